// jemalloc reads this symbol at start-up. Retaining pages avoids the ~10 us
// first-touch cost per fresh page that made training 3-7x slower with
// glibc's allocator on this machine (docs: MACHINE-NOTES.md).
extern "C" {
__attribute__((used)) const char* malloc_conf =
    "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1";
}
