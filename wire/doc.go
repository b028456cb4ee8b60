// Package wire is what a NodePass master sends, and nothing else: the
// Server-Sent-Events framer (Framer), the event decoder (Decoder, Event,
// Instance, DecodeError and its reasons), the id rules (ValidID,
// PseudoInstanceID) and the /info answer (DecodeInfo). It knows the
// protocol of NodePass v1.14.0 as recorded in wiretest's recordings; it
// keeps no state and starts no goroutine. Package collector reads streams
// with it; package simulator writes the same format.
//
// Both parsers are hand-written for speed (no allocation per event in
// steady state) and checked against slow references that are obviously
// right: encoding/json (wiretest.Reference) and a transcription of the
// WHATWG event-stream algorithm (the fuzz tests).
//
// # A new NodePass field
//
// A field NodePass adds to its instance object touches these places, in
// data-flow order:
//
//  1. wire/decode.go: a case in instanceObject (and a presence bit in
//     verdict if the field is required).
//  2. wire/event.go: the Instance field.
//  3. wire/wiretest: the reference schema (Reference's pointer struct and
//     View) and the NodePass mirror (Event, Instance), so the fuzz test and
//     the recordings test cover it.
//  4. collector/apply.go: the copy into the Tunnel (Tunnel.update), and the
//     Tunnel field in collector/state.go.
//  5. collector/metrics.go: a row of the family table, if it is exported
//     to Prometheus (names in docs/design.md).
//  6. api: the REST JSON of a tunnel, and the SSE push.
//  7. collector/persist*.go: the snapshot, if the value must survive a
//     restart.
//  8. simulator/encode.go and the simulator's instance: the encoder, so
//     the demo and the tests send it.
//  9. wiretest's recordings and the fixtures tests (decode_test.go), when
//     a new recording shows the field.
package wire
