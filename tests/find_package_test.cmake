# Installs cwcl into a fresh prefix and builds tests/find-package-test against it.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
include(${CMAKE_CURRENT_LIST_DIR}/script_helpers.cmake)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/downstream_loss)
# The installed data is found under the prefix, not in the source tree.
run(${CMAKE_COMMAND} -E env CWCL_DATA=${prefix}/share/cwcl/data ${WORK_DIR}/build/downstream)
