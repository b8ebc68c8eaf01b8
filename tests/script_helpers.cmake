# Helpers of the cmake -P test scripts.

# Runs a command; fails the test with its output unless it exits 0.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endfunction()

# Runs cwcl (${CWCL}) and fails unless it exits with `code`; the output is
# left in last_out.
function(expect_exit code)
  execute_process(COMMAND ${CWCL} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL code)
    message(FATAL_ERROR "cwcl ${ARGN}: exit ${rc}, expected ${code}\n${out}\n${err}")
  endif()
  set(last_out "${out}${err}" PARENT_SCOPE)
endfunction()

# Fails unless the last expect_exit's output matches `regex`.
function(expect_match regex)
  if(NOT last_out MATCHES "${regex}")
    message(FATAL_ERROR "expected output matching '${regex}', got:\n${last_out}")
  endif()
endfunction()

# Fails if the last expect_exit's output matches `regex`.
function(expect_no_match regex)
  if(last_out MATCHES "${regex}")
    message(FATAL_ERROR "output should not match '${regex}', got:\n${last_out}")
  endif()
endfunction()
