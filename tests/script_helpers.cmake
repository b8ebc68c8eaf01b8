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
