# One static library per tier (README "Layout"). Each tier sees only its own
# public headers and those of the tiers it links: its include root is a
# folder of symbolic links in the build tree (tiers/<name>/cwcl/...) to the
# headers it owns under include/cwcl/, so `#include <cwcl/x/y.h>` of a tier
# that is not linked fails to compile, and a link it does not declare fails
# to link. Private headers stay in src/<tier>/ and are never installed.
#
#   cwcl_add_tier(<name> [INTERFACE]
#     SOURCES <files>            # src/...
#     HEADERS <paths>            # under include/cwcl/: files or whole folders
#     TIERS <names>              # tiers it may use (linked PUBLIC)
#     PUBLIC_LIBS <targets>      # third-party libraries its headers need
#     PRIVATE_LIBS <targets>     # third-party libraries its sources need
#     PRIVATE_INCLUDES <dirs>)
function(cwcl_add_tier name)
  cmake_parse_arguments(T "INTERFACE" "" "SOURCES;HEADERS;TIERS;PUBLIC_LIBS;PRIVATE_LIBS;PRIVATE_INCLUDES" ${ARGN})
  set(root "${CMAKE_BINARY_DIR}/tiers/${name}")
  file(REMOVE_RECURSE "${root}")
  foreach(header IN LISTS T_HEADERS)
    set(target_path "${CMAKE_SOURCE_DIR}/include/cwcl/${header}")
    if(NOT EXISTS "${target_path}")
      message(FATAL_ERROR "tier ${name}: include/cwcl/${header} does not exist")
    endif()
    get_filename_component(parent "${root}/cwcl/${header}" DIRECTORY)
    file(MAKE_DIRECTORY "${parent}")
    file(CREATE_LINK "${target_path}" "${root}/cwcl/${header}" SYMBOLIC)
  endforeach()
  set(target cwcl_${name})
  if(T_INTERFACE)
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
  else()
    add_library(${target} STATIC ${T_SOURCES})
    set(scope PUBLIC)
    target_compile_features(${target} PUBLIC cxx_std_17)
    cwcl_set_warnings(${target})
    if(CWCL_USE_PCH)
      if(name STREQUAL "loss")
        # One precompiled torch header, reused by every target with the same flags.
        target_precompile_headers(${target} PRIVATE <torch/torch.h>)
      else()
        target_precompile_headers(${target} REUSE_FROM cwcl_loss)
      endif()
    endif()
    if(T_PRIVATE_LIBS)
      target_link_libraries(${target} PRIVATE ${T_PRIVATE_LIBS})
    endif()
    if(T_PRIVATE_INCLUDES)
      target_include_directories(${target} PRIVATE ${T_PRIVATE_INCLUDES})
    endif()
  endif()
  add_library(cwcl::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(${target} ${scope}
    $<BUILD_INTERFACE:${root}> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set(links torch)
  foreach(tier IN LISTS T_TIERS)
    list(APPEND links cwcl_${tier})
  endforeach()
  target_link_libraries(${target} ${scope} ${links} ${T_PUBLIC_LIBS})
  set_property(GLOBAL APPEND PROPERTY CWCL_TIERS ${target})
endfunction()

# No source reaches into another folder by a relative path: private headers
# are included from their own folder only.
function(cwcl_check_relative_includes)
  file(GLOB_RECURSE sources RELATIVE "${CMAKE_SOURCE_DIR}" "${CMAKE_SOURCE_DIR}/src/*" "${CMAKE_SOURCE_DIR}/include/*"
       "${CMAKE_SOURCE_DIR}/apps/*")
  foreach(file IN LISTS sources)
    file(STRINGS "${CMAKE_SOURCE_DIR}/${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<][.][.]/")
    if(lines)
      message(FATAL_ERROR "${file}: includes a file of another folder by a relative path (${lines}); "
                          "use the tier's public header <cwcl/...> or keep the header private to its folder")
    endif()
  endforeach()
endfunction()
