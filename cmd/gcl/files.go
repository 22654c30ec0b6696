package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// expandPaths replaces each directory in paths by the files directly in it
// whose names match (subdirectories are not searched), sorted by name.
// Files named explicitly are kept whatever their name. A file reached twice
// (as itself and through its directory) is listed once, so it is not
// reported as clashing with itself.
func expandPaths(paths []string, match func(name string) bool) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	add := func(path string) {
		if key := filepath.Clean(path); !seen[key] {
			seen[key] = true
			files = append(files, path)
		}
	}
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if !info.IsDir() {
			add(path)
			continue
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", path, err)
		}
		var found []string
		for _, entry := range entries {
			if entry.Type().IsRegular() && match(entry.Name()) {
				found = append(found, filepath.Join(path, entry.Name()))
			}
		}
		slices.Sort(found)
		for _, file := range found {
			add(file)
		}
	}
	return files, nil
}

// isJobFile matches the job files of a directory: native HCL and its JSON
// form.
func isJobFile(name string) bool {
	return strings.HasSuffix(name, ".hcl") || strings.HasSuffix(name, ".hcl.json")
}

// isHCLFile matches the files gcl fmt formats.
func isHCLFile(name string) bool {
	return strings.HasSuffix(name, ".hcl")
}

// writeFileAtomic replaces path with content so that readers see either the
// old or the new file, never a half-written one: the content goes to a
// temporary file in the same directory, which is then renamed over path.
func writeFileAtomic(path string, content []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("setting mode of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}
