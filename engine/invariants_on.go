//go:build invariants

package engine

// checkEveryTurn makes the Node verify CheckInvariants after every turn
// (O(fleet) each time): `go test -tags invariants ./...`.
const checkEveryTurn = true
