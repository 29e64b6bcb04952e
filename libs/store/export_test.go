package store

// Queries exposes the named statements to the tests, which prepare each
// against a migrated database.
func Queries() map[string]string { return queries }
