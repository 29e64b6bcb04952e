module github.com/entrasync/entrasync/services/graphsim

go 1.26.0

require (
	github.com/entrasync/entrasync/libs v0.0.0
	github.com/rs/zerolog v1.35.1
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/entrasync/entrasync/libs => ../../libs
