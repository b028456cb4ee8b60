package jsonenc

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func check(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
		t.Fatalf("AppendString(%q) = %s, want %s", s, got[len("prefix"):], want)
	}
}

// TestAppendStringTable: every single byte, every rune below U+3000, and
// strings mixing escapes, multi-byte runes and invalid UTF-8 come out as
// encoding/json writes them.
func TestAppendStringTable(t *testing.T) {
	for b := range 256 {
		check(t, string([]byte{byte(b)}))
		check(t, "a"+string([]byte{byte(b)})+"z")
	}
	for r := rune(0); r < 0x3000; r++ {
		if utf8.ValidRune(r) {
			check(t, "x"+string(r)+"y")
		}
	}
	for _, s := range []string{"", `plain`, `"quoted" \ back`, "<a href='x'>&amp;</a>", "line\u2028sep\u2029",
		"tab\tnew\nret\rbell\a", "\xff\xfe broken \xc3", "日本語 тест 🚀", "ok\x00nul"} {
		check(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "abc", "<>&", "\u2028", "\xff", "日本", "\x00\x1f\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { check(t, s) })
}

// TestAppendStringDecodes: what AppendString writes decodes, with
// encoding/json, to the string it was given, for every ASCII byte, for
// U+2028 and U+2029, and for invalid UTF-8 (each bad byte becomes U+FFFD,
// as encoding/json decides); and the escapes that have two forms are
// written in the short one, \b and \f, as encoding/json writes them. (The
// /api/v1 encoder once wrote \u0008 and \u000c where this one writes \b
// and \f; there is one encoder now.)
func TestAppendStringDecodes(t *testing.T) {
	inputs := []string{"\u2028", "\u2029", "a\u2028b\u2029c", "\xff", "\xc3", "\xe2\x80", "ok\xffok\xfe", "\xed\xa0\x80"}
	for b := range 0x80 {
		inputs = append(inputs, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	for _, in := range inputs {
		var got string
		if err := json.Unmarshal(AppendString(nil, in), &got); err != nil {
			t.Fatalf("%q: %v in %s", in, err, AppendString(nil, in))
		}
		if want := string([]rune(in)); got != want { // []rune: U+FFFD per bad byte
			t.Errorf("%q decodes to %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"\b": `"\b"`, "\f": `"\f"`, "\n": `"\n"`, "\r": `"\r"`, "\t": `"\t"`,
		"\x00": `"\u0000"`, "\x1f": `"\u001f"`, "\x7f": "\"\x7f\"",
		"\u2028": `"\u2028"`, "\u2029": `"\u2029"`, "\xff": `"\ufffd"`,
	} {
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}
