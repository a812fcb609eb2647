package store

// Key schema. Every key starts with a one-byte namespace so that each kind of
// record can be scanned on its own and new namespaces never collide.
//
//	'c' + id[16]          client record (ClientRecord)
//	'm' + name            engine metadata, JSON (settings, releases, counters)
//	'k' + id[16]          client credential (transport)
//	'i' + token-hash[32]  installer (enrollment token)
//	'a' + name            admin data (token hash, ...)
const (
	NSClient     byte = 'c'
	NSMeta       byte = 'm'
	NSCredential byte = 'k'
	NSInstaller  byte = 'i'
	NSAdmin      byte = 'a'
)

// ClientKey returns the key of a client record.
func ClientKey(id [16]byte) []byte { return AppendClientKey(nil, id) }

// AppendClientKey appends the key of a client record to b.
func AppendClientKey(b []byte, id [16]byte) []byte {
	b = append(b, NSClient)
	return append(b, id[:]...)
}

// Key joins a namespace and a name into a key.
func Key(ns byte, name []byte) []byte {
	k := make([]byte, 0, 1+len(name))
	k = append(k, ns)
	return append(k, name...)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
