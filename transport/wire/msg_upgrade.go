package wire

// UpgradeOffer tells a client to upgrade now; it holds a slot for LeaseMs.
// Signature is ed25519 over exactly Manifest; the client checks that the
// manifest agrees with the offer's release, platform, size and hash.
type UpgradeOffer struct {
	ReleaseID    string // <= MaxReleaseID
	Platform     Platform
	Target       Version
	PackageSize  uint64
	SHA256       [32]byte
	Manifest     []byte // <= MaxManifest
	Signature    [64]byte
	LeaseMs      uint32
	DownloadPath string // <= MaxDownloadPath; same bytes over HTTPS
}

func (*UpgradeOffer) Type() MsgType { return TypeUpgradeOffer }

func (m *UpgradeOffer) AppendTo(b []byte) []byte {
	b = appendString(b, m.ReleaseID)
	b = append(b, byte(m.Platform))
	b = appendVersion(b, m.Target)
	b = appendU64(b, m.PackageSize)
	b = append(b, m.SHA256[:]...)
	b = appendBytes(b, m.Manifest)
	b = append(b, m.Signature[:]...)
	b = appendU32(b, m.LeaseMs)
	return appendString(b, m.DownloadPath)
}

func (m *UpgradeOffer) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.ReleaseID = d.str(MaxReleaseID)
	m.Platform = d.platform()
	m.Target = d.version()
	m.PackageSize = d.u64()
	d.array(m.SHA256[:])
	m.Manifest = d.bytes(MaxManifest)
	d.array(m.Signature[:])
	m.LeaseMs = d.u32()
	m.DownloadPath = d.str(MaxDownloadPath)
	return d.finish()
}

// ChunkRequest asks for package bytes [Offset, Offset+Length); downloads
// resume by asking from the offset already held.
type ChunkRequest struct {
	ReleaseID string // <= MaxReleaseID
	Platform  Platform
	Offset    uint64
	Length    uint32 // 1..MaxChunkData(maxFrame), checked by the server
}

func (*ChunkRequest) Type() MsgType { return TypeChunkRequest }

func (m *ChunkRequest) AppendTo(b []byte) []byte {
	b = appendString(b, m.ReleaseID)
	b = append(b, byte(m.Platform))
	b = appendU64(b, m.Offset)
	return appendU32(b, m.Length)
}

func (m *ChunkRequest) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.ReleaseID = d.str(MaxReleaseID)
	m.Platform = d.platform()
	m.Offset = d.u64()
	m.Length = d.u32()
	return d.finish()
}

// Chunk answers one ChunkRequest with the same Offset.
type Chunk struct {
	Offset uint64
	Data   []byte // bounded by the frame limit only

	// buf is the pooled buffer a decoded Data lives in, until Release.
	// A download decodes a package's worth of chunks, each copied out of
	// the frame (whose buffer goes back to the reader's pool): with a
	// fresh slice each, chunk copies were a quarter of what a load
	// process allocated in a rollout (bench/RESULTS.md, seventeenth pass).
	buf *[]byte
}

// Release gives a decoded chunk's buffer back for the next chunk. Data is
// nil afterwards; the caller must not keep it. A chunk never released is
// only garbage, as before; Release on an encoded one does nothing.
func (m *Chunk) Release() {
	if m.buf != nil {
		putBuf(m.buf)
		m.buf = nil
	}
	m.Data = nil
}

func (*Chunk) Type() MsgType { return TypeChunk }

func (m *Chunk) AppendTo(b []byte) []byte {
	b = appendU64(b, m.Offset)
	return appendBytes(b, m.Data)
}

func (m *Chunk) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.Offset = d.u64()
	m.Release()
	if v := d.take(d.length(MaxFrameLimit)); d.err == nil && len(v) > 0 {
		m.buf = getBuf(len(v))
		m.Data = *m.buf
		copy(m.Data, v)
	}
	if err := d.finish(); err != nil {
		m.Release()
		return err
	}
	return nil
}

// Progress reports download/install progress and renews the lease.
type Progress struct{ BytesDone uint64 }

func (*Progress) Type() MsgType              { return TypeProgress }
func (m *Progress) AppendTo(b []byte) []byte { return appendU64(b, m.BytesDone) }

func (m *Progress) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.BytesDone = d.u64()
	return d.finish()
}

// Done says the package verified and installed; the client restarts and
// its next CheckIn with the target version completes the upgrade.
type Done struct{}

func (*Done) Type() MsgType            { return TypeDone }
func (*Done) AppendTo(b []byte) []byte { return b }
func (*Done) Unmarshal(p []byte) error { return unmarshalEmpty(p) }

// Fail reports a failed upgrade with a code from the 32-63 range.
type Fail struct {
	Code ErrCode
	Msg  string // <= MaxMessage, truncated on encode
}

func (*Fail) Type() MsgType { return TypeFail }

func (m *Fail) AppendTo(b []byte) []byte {
	b = appendU16(b, uint16(m.Code))
	return appendText(b, m.Msg, MaxMessage)
}

func (m *Fail) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.Code = ErrCode(d.u16())
	d.check(m.Code != 0, "error code 0")
	m.Msg = d.str(MaxMessage)
	return d.finish()
}
