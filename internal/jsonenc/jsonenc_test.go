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
