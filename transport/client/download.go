package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"

	"jumpfleet/packages"
	"jumpfleet/transport/wire"
)

// File is where a download goes: *os.File fits.
type File interface {
	io.ReaderAt
	io.WriterAt
}

// DownloadError is a verification failure; Code is the wire code to send
// in Fail (size_mismatch, hash_mismatch, bad_signature, download_failed).
type DownloadError struct {
	Code wire.ErrCode
	Msg  string
}

func (e *DownloadError) Error() string { return e.Code.String() + ": " + e.Msg }

// DownloadOptions tune Download.
type DownloadOptions struct {
	// Have is how many leading bytes f already holds (resume).
	Have int64
	// Window is the number of ChunkRequests kept in flight (default 4).
	Window int
	// ProgressEvery sends Progress after this many bytes (default 4 MiB);
	// each Progress renews the lease (a durable write on the server).
	ProgressEvery int64
}

// Download verifies the offer's signed manifest with pub, fetches the
// package into f from opts.Have (resume) with pipelined ChunkRequests, then
// checks size and SHA-256 of the whole file. Only when it returns nil may
// the caller install and report Done; on a *DownloadError report Fail with
// its Code.
func (c *Conn) Download(ctx context.Context, offer *wire.UpgradeOffer, pub ed25519.PublicKey, f File, opts DownloadOptions) error {
	if err := VerifyOffer(offer, pub); err != nil {
		return err
	}
	size := int64(offer.PackageSize)
	if opts.Have < 0 || opts.Have > size {
		opts.Have = 0
	}
	if opts.Window <= 0 {
		opts.Window = 4
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 4 << 20
	}
	chunk := int64(wire.MaxChunkData(int(c.ack.MaxFrame)))
	type result struct {
		off int64
		ans wire.Msg
		err error
	}
	// Requests are answered in order; a small window of goroutines keeps
	// them pipelined. Each writes its own range of f.
	next := opts.Have
	sinceProgress := int64(0)
	for next < size {
		var reqs []chan result
		for k := 0; k < opts.Window && next < size; k++ {
			n := min(chunk, size-next)
			ch := make(chan result, 1)
			reqs = append(reqs, ch)
			off := next
			go func() {
				ans, err := c.roundTrip(ctx, &wire.ChunkRequest{ReleaseID: offer.ReleaseID, Platform: offer.Platform, Offset: uint64(off), Length: uint32(n)})
				ch <- result{off, ans, err}
			}()
			next += n
		}
		// Collect all answers of this round before deciding anything, so
		// no request goroutine outlives the call.
		var firstErr error
		got := int64(0)
		for _, ch := range reqs {
			r := <-ch
			if firstErr != nil {
				continue
			}
			if r.err != nil {
				firstErr = r.err
				continue
			}
			ck, ok := r.ans.(*wire.Chunk)
			if !ok || int64(ck.Offset) != r.off || len(ck.Data) == 0 || r.off+int64(len(ck.Data)) > size {
				firstErr = &DownloadError{Code: wire.CodeDownloadFailed, Msg: "bad chunk answer"}
				continue
			}
			if _, err := f.WriteAt(ck.Data, r.off); err != nil {
				firstErr = &DownloadError{Code: wire.CodeNoSpace, Msg: err.Error()}
				continue
			}
			if int64(len(ck.Data)) < min(chunk, size-r.off) {
				// Short chunk: ask again from where it stopped.
				next = min(next, r.off+int64(len(ck.Data)))
			}
			got += int64(len(ck.Data))
			ck.Release()
		}
		if firstErr != nil {
			return firstErr
		}
		if sinceProgress += got; sinceProgress >= opts.ProgressEvery {
			sinceProgress = 0
			if err := c.Progress(uint64(next)); err != nil {
				return err
			}
		}
	}
	return VerifyFile(offer, f)
}

// VerifyOffer checks the manifest signature and that the manifest agrees
// with the offer.
func VerifyOffer(offer *wire.UpgradeOffer, pub ed25519.PublicKey) error {
	m, err := packages.Verify(pub, offer.Manifest, offer.Signature[:])
	if err != nil {
		return &DownloadError{Code: wire.CodeBadSignature, Msg: err.Error()}
	}
	if m.Release != offer.ReleaseID || m.Platform != offer.Platform.String() || m.Version != offer.Target.String() ||
		m.Size != int64(offer.PackageSize) || m.Digest() != offer.SHA256 {
		return &DownloadError{Code: wire.CodeBadSignature, Msg: "signed manifest does not match the offer"}
	}
	return nil
}

// copyBufs holds VerifyFile's read buffers: io.Copy would allocate 32 KB
// per verified package, which an agent fleet pays on every upgrade.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// VerifyFile checks f's first PackageSize bytes against the offer's hash
// and that nothing follows them.
func VerifyFile(offer *wire.UpgradeOffer, f File) error {
	size := int64(offer.PackageSize)
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), *buf)
	copyBufs.Put(buf)
	if err != nil {
		return &DownloadError{Code: wire.CodeDownloadFailed, Msg: err.Error()}
	}
	if n != size {
		return &DownloadError{Code: wire.CodeSizeMismatch, Msg: fmt.Sprintf("have %d bytes, want %d", n, size)}
	}
	var extra [1]byte
	if k, _ := f.ReadAt(extra[:], size); k != 0 {
		return &DownloadError{Code: wire.CodeSizeMismatch, Msg: "file longer than the package"}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if sum != offer.SHA256 {
		return &DownloadError{Code: wire.CodeHashMismatch, Msg: "sha256 differs from the offer"}
	}
	return nil
}
