package archive

import (
	"os"
	"syscall"
)

// fdatasync makes f's data durable (and its size: what reading it needs).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// now (sync_file_range with SYNC_FILE_RANGE_WRITE, which does not wait), so
// that the fdatasync before the next commit finds most of the batch
// already written instead of writing all of it while the run waits. A
// failure only loses that head start.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
	syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
