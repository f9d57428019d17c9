//go:build race

package tests

// raceBuild is true when the tests run under -race: the chatd binary they
// start is then built with -race too, so that a data race inside the
// server, which the black-box tests drive far harder than its own package
// tests do, fails the run instead of passing unseen.
const raceBuild = true
