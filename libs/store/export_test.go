package store

// RegisterUUIDStrings is registerUUIDStrings, for the COPY benchmark.
var RegisterUUIDStrings = registerUUIDStrings
