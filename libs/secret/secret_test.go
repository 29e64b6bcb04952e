package secret

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, KeySize)
	box, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal([]byte("s3cret"), []byte("tenant-a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed value contains the plain text")
	}
	got, err := box.Open(sealed, []byte("tenant-a"))
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("Open = %q, %v; want s3cret", got, err)
	}
	if _, err := box.Open(sealed, []byte("tenant-b")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with other aad: err = %v, want ErrOpen", err)
	}
	other, _ := NewBox(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(sealed, []byte("tenant-a")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with other key: err = %v, want ErrOpen", err)
	}
	if _, err := box.Open(sealed[:5], nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open of truncated value: err = %v, want ErrOpen", err)
	}
}

func TestNewBoxRejectsShortKey(t *testing.T) {
	t.Parallel()
	if _, err := NewBox([]byte("short")); err == nil {
		t.Fatal("NewBox accepted a 5-byte key")
	}
}
