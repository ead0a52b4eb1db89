module github.com/artpulse/artpulse/hack/go-bins/pause

go 1.25.0
