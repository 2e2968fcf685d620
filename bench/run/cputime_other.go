//go:build !unix

package run

import "time"

// cpuTime is not measured here; reports leave cpu/event out.
func cpuTime() time.Duration { return 0 }
