package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSecretFileBytes bounds a secret file: an API key, password or token is
// a line, and a path pointed at a log or a device by mistake must not be
// read whole into memory and sent as a header.
const MaxSecretFileBytes = 64 << 10

// ReadSecretFile reads a credential file: an API key, a password or a
// bearer token. what names the secret in errors ("API key", "bearer
// token"); errors name the file, never its content.
//
// The secret is the file's content less one trailing newline ("\n" or
// "\r\n", as editors write it); anything else is kept, spaces included. An
// empty secret, a CR or LF inside it (it is sent as an HTTP header value)
// and a file larger than MaxSecretFileBytes are refused.
func ReadSecretFile(path, what string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s file: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s file %s: %w", what, path, err)
	}
	if len(b) > MaxSecretFileBytes {
		return "", fmt.Errorf("%s file %s is larger than %d KiB", what, path, MaxSecretFileBytes>>10)
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if err := CheckSecret(s); err != nil {
		return "", fmt.Errorf("%s file %s %w", what, path, err)
	}
	return s, nil
}

// CheckSecret checks a secret given inline (an api_key in the config file)
// as ReadSecretFile checks a file's: not empty, one line. Its error reads
// after the secret's name ("api_key is empty").
func CheckSecret(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case strings.ContainsAny(s, "\r\n"):
		return errors.New("holds more than one line (a CR or LF inside)")
	}
	return nil
}
