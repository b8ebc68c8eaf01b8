# Compile through ccache when present. The precompiled header needs ccache's
# pch sloppiness, or every object misses the cache; base_dir and hash_dir
# let a fresh clone at another path (as CI makes) hit the cache.
if(CWCL_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(CWCL_CCACHE_PROGRAM ccache)
  if(CWCL_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} CCACHE_NOHASHDIR=1
      ${CWCL_CCACHE_PROGRAM})
    message(STATUS "cwcl: compiling through ${CWCL_CCACHE_PROGRAM}")
  endif()
endif()
