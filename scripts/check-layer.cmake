# Run by the build (see stablefs_layer in CMakeLists.txt): fails when a file of layer LAYER
# includes a project header outside the folders in ALLOWED (comma-separated), i.e. reaches a
# layer it does not depend on. Project headers are included by their path from the source
# root ("fs/meta/journal.h"); system headers (<...>) are not checked.
# -DLAYER=fs/meta -DALLOWED=fs/meta,fs/format,bounce -DSOURCE_DIR=... -DSTAMP=file
string(REPLACE "," ";" allowed "${ALLOWED}")
file(GLOB files ${SOURCE_DIR}/${LAYER}/*.h ${SOURCE_DIR}/${LAYER}/*.cc)
set(errors "")
foreach(file ${files})
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" header "${line}")
    get_filename_component(header_dir "${header}" DIRECTORY)
    list(FIND allowed "${header_dir}" found)
    if(found EQUAL -1)
      file(RELATIVE_PATH rel ${SOURCE_DIR} ${file})
      string(APPEND errors "  ${rel} includes \"${header}\": layer ${LAYER} may use only ${ALLOWED}\n")
    endif()
  endforeach()
endforeach()
if(errors)
  message(FATAL_ERROR "include outside the layer's dependencies:\n${errors}")
endif()
file(WRITE ${STAMP} "ok\n")
