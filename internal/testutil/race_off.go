//go:build !race

package testutil

// Race is set when the tests run with the race detector, which makes
// them 5 to 20 times slower: a test whose scale only explores more states
// of one goroutine runs smaller under it.
const Race = false
