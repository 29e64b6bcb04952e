package store

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestUUIDStringsEncodeInBinary(t *testing.T) {
	m := pgtype.NewMap()
	registerUUIDStrings(m)
	want := []byte{0x01, 0xa2, 0x3b, 0x81, 0xda, 0x85, 0x70, 0xb1, 0x86, 0x6c, 0x4b, 0x1d, 0x2f, 0xa3, 0xb8, 0x60}
	for _, s := range []string{"01a23b81-da85-70b1-866c-4b1d2fa3b860", "01A23B81-DA85-70B1-866C-4B1D2FA3B860"} {
		got, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, s, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Encode(%q) = %x, %v; want %x", s, got, err, want)
		}
	}
	// A pointer to a string, as nullable ids come, is the same value.
	s := "01a23b81-da85-70b1-866c-4b1d2fa3b860"
	if got, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, &s, nil); err != nil || !bytes.Equal(got, want) {
		t.Errorf("Encode(&%q) = %x, %v; want %x", s, got, err, want)
	}
	// Text format, for query parameters, is left to pgx.
	if got, err := m.Encode(pgtype.UUIDOID, pgtype.TextFormatCode, s, nil); err != nil || string(got) != s {
		t.Errorf("Encode(%q) in text = %q, %v", s, got, err)
	}
	// pgx's own values still encode.
	if got, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, [16]byte(want), nil); err != nil || !bytes.Equal(got, want) {
		t.Errorf("Encode([16]byte) = %x, %v", got, err)
	}
}

func TestUUIDStringsRefuseWhatIsNotCanonical(t *testing.T) {
	m := pgtype.NewMap()
	registerUUIDStrings(m)
	for _, s := range []string{
		"",
		"01a23b81da8570b1866c4b1d2fa3b860",      // no hyphens: left to pgx's fallback
		"01a23b81-da85-70b1-866c-4b1d2fa3b86",   // short
		"01a23b81-da85-70b1-866c-4b1d2fa3b8600", // long
		"01a23b81-da85-70b1-866c_4b1d2fa3b860",  // a hyphen missing
		"01a23b81-da85-70b1-866c-4b1d2fa3b86g",  // not hex
		"{01a23b81-da85-70b1-866c-4b1d2fa3b86}",
	} {
		if got, err := (encodeUUIDString{}).Encode(s, nil); err == nil {
			t.Errorf("Encode(%q) = %x, want an error", s, got)
		}
	}
}
