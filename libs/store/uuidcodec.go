package store

import (
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
	u, ok := parseID(value.(string))
	if !ok {
		return nil, errNotCanonicalUUID
	}
	return append(buf, u[:]...), nil
}
