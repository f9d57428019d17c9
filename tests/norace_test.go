//go:build !race

package tests

// raceBuild is false when the tests run without -race (see race_test.go).
const raceBuild = false
