package store

import (
	"encoding/hex"
	"errors"

	"github.com/jackc/pgx/v5/pgtype"
)

// The generated queries carry tenant and run ids, uuid columns, as Go
// strings. As a query parameter a string goes in text format and Postgres
// parses it. COPY (the plan's items and work tables) sends every value in
// binary, and pgx's uuid codec encodes only 16-byte values in binary: each
// string id first failed to encode (an error formatted with fmt.Errorf),
// then was parsed as text and encoded again. That fallback was three
// quarters of the CPU a COPY took in the client, two ids per row.
//
// registerUUIDStrings gives a connection a uuid codec that also encodes a
// string in binary. A string that is not a uuid in its canonical form
// (8-4-4-4-12 hex digits) gets an error, and pgx's fallback then handles
// it as before.
func registerUUIDStrings(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidStringCodec{}})
}

// uuidStringCodec is pgx's uuid codec, plus binary encoding of strings.
type uuidStringCodec struct{ pgtype.UUIDCodec }

func (c uuidStringCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return encodeUUIDString{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

type encodeUUIDString struct{}

var errNotCanonicalUUID = errors.New("not a uuid in canonical form")

func (encodeUUIDString) Encode(value any, buf []byte) ([]byte, error) {
	u, err := parseCanonicalUUID(value.(string))
	if err != nil {
		return nil, err
	}
	return append(buf, u[:]...), nil
}

// parseCanonicalUUID reads a uuid written as 8-4-4-4-12 hex digits, in
// either case.
func parseCanonicalUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, errNotCanonicalUUID
	}
	var digits [32]byte
	copy(digits[0:8], s[0:8])
	copy(digits[8:12], s[9:13])
	copy(digits[12:16], s[14:18])
	copy(digits[16:20], s[19:23])
	copy(digits[20:32], s[24:36])
	if _, err := hex.Decode(u[:], digits[:]); err != nil {
		return [16]byte{}, errNotCanonicalUUID
	}
	return u, nil
}
