# Sourced by the scripts that compare cwcl with Python PyTorch
# (bench_tower.sh, bench_image.sh): the interpreter, a folder for the
# exported tower (removed on exit), and jemalloc with page retention
# preloaded into Python as cwcl links it (MACHINE-NOTES.md).
python=${PYTHON:-/usr/bin/python3}
export_dir=$(mktemp -d)
trap 'rm -rf "$export_dir"' EXIT
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
preload=()
[[ -f $jemalloc ]] && preload=(env LD_PRELOAD=$jemalloc MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1)
