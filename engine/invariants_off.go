//go:build !invariants

package engine

// checkEveryTurn is off in normal builds; see invariants_on.go.
const checkEveryTurn = false
