// Package realwal holds the tests of walfile on WAL files that SQLite
// itself writes. They live apart from walfile so that walfile's test and
// fuzz binary does not include SQLite (a fuzz binary instruments every
// package it links, and SQLite's is large enough to make fuzzing crawl).
package realwal
