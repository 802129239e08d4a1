# Sourced by gpu_check.sh and gpu_nccl_check.sh: install_wheels WHEEL_DIR PREFIX installs the wheels carried in
# WHEEL_DIR (a device machine lacks array-api-compat, mpi4py and MPICH) with pip --prefix PREFIX, and exports
# PYTHONPATH, PATH and LD_LIBRARY_PATH so that this shell's commands find them. Nothing when WHEEL_DIR has no wheel.
#
# Not pip --target: under --target pip keeps only the package folders (and bin), and drops what a wheel puts in
# its data folder under lib/ (MPICH's lib/libmpi.so.12), so mpi4py then raises "cannot load MPI library". Under
# --prefix the library lands in PREFIX/lib, which mpi4py does not search (it looks in the interpreter's
# prefixes: mpi4py/_mpiabi.py _dlopen_rpath), so LD_LIBRARY_PATH points the loader there.
# Uses $PY (the interpreter; python3 when unset). Returns pip's status.
install_wheels() {
    local wheels=$1 prefix=$2 site
    ls "$wheels"/*.whl >/dev/null 2>&1 || return 0
    ${PY:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --ignore-installed \
        --prefix "$prefix" "$wheels"/*.whl || return
    # the scheme decides the folder (lib/python3.X/site-packages; dist-packages or local/ on some Debian builds)
    site=$(find "$prefix" -maxdepth 5 -type d \( -name site-packages -o -name dist-packages \) | head -n 1)
    [ -n "$site" ] && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    [ -d "$prefix/bin" ] && export PATH="$prefix/bin:$PATH"
    [ -d "$prefix/lib" ] && export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    return 0
}
