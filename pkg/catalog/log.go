package catalog

import "strings"

// EntryKey is the key of the log entry of write id for the artifact key
// <spec>/<task>/<type>: _catalog/log/<spec>/<task>/<type>/<id>. Listing
// the log gives the artifacts written since the last compaction without
// reading a single entry.
func EntryKey(artifactKey, id string) string { return LogPrefix + artifactKey + "/" + id }

// ParseEntryKey splits a log entry key into its artifact key and write id.
func ParseEntryKey(key string) (artifactKey, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, LogPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || strings.Count(rest[:i], "/") != 2 || rest[i+1:] == "" {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
