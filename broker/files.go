package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"jumpfleet/store"
)

// Files in the data directory.
const (
	dbDir       = "db"
	packagesDir = "packages"
	tlsDir      = "tls"
	certFile    = "cert.pem"
	keyFile     = "key.pem"
	// ReleaseKeyFile is the release-signing key (ed25519, 0600). Its public
	// half is what clients verify package manifests against.
	ReleaseKeyFile = "release.key"
	// CtlFileName is jumpctl's connection file (0600: it holds the token).
	CtlFileName = "jumpctl.json"
)

// adminTokenKey is where the SHA-256 of the admin token lives ('a'
// namespace; identity uses "console/" there).
var adminTokenKey = store.Key(store.NSAdmin, []byte("admin/token-sha256"))

// loadOrCreateCert returns the broker's TLS certificate, creating a
// self-signed ECDSA P-256 one on first start. created reports that.
func loadOrCreateCert(dir string) (cert tls.Certificate, created bool, err error) {
	cp, kp := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	if _, err := os.Stat(cp); err == nil {
		cert, err = tls.LoadX509KeyPair(cp, kp)
		if err != nil {
			return cert, false, fmt.Errorf("broker: certificate in %s: %w", dir, err)
		}
		return cert, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return cert, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, false, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return cert, false, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "jumpbroker", Organization: []string{"jumpfleet"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return cert, false, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return cert, false, err
	}
	// Key first, then the certificate: the certificate's presence is what
	// says "created", so a crash in between just makes a new pair.
	if err := writeFileSync(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return cert, false, err
	}
	if err := writeFileSync(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return cert, false, err
	}
	cert, err = tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return cert, true, err
}

func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// adminToken returns the stored admin token hash, making a new token when
// there is none or reset is set. token is non-empty only when it was made
// now (it is shown once and never stored).
func adminToken(db *store.DB, reset bool) (hash [32]byte, token string, err error) {
	if !reset {
		v, ok, err := db.Get(adminTokenKey)
		if err != nil {
			return hash, "", err
		}
		if ok && len(v) == 32 {
			copy(hash[:], v)
			return hash, "", nil
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return hash, "", err
	}
	token = "jfa_" + base64.RawURLEncoding.EncodeToString(raw)
	hash = sha256.Sum256([]byte(token))
	b := db.NewBatch()
	defer b.Close()
	b.Put(adminTokenKey, hash[:])
	if err := db.Commit(b, true); err != nil {
		return hash, "", err
	}
	return hash, token, nil
}
