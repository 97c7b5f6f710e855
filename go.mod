module github.com/necrocode/artifactstore

go 1.26.8
