// Package wiretest holds what tests of the NodePass wire format share: the
// recordings of a real NodePass v1.14.0 master (the one copy in the
// repository), the totals the counter rules must give for them, the
// NodePass event schema for encoding/json, and Reference, a slow decoder
// built on encoding/json that wire's Decoder must agree with.
//
// It is imported by tests only. It does not import package wire, so that
// wire's own tests can use it; its reason strings and field paths are
// written out independently, and a mismatch fails wire's tests.
package wiretest
