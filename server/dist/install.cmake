# What `cmake --install` puts where, the pkg-config file, and the .deb (CPack). Included by the
# top-level CMakeLists.txt.
install(TARGETS usersig usersigd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS usersig_shared usersig_codec
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/migrations/ DESTINATION ${CMAKE_INSTALL_DATADIR}/usersigd/migrations
        FILES_MATCHING PATTERN "*.sql")
install(FILES ${CMAKE_SOURCE_DIR}/admin-api/openapi.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/usersigd)
# The web dashboard (served at /ui/ from <bindir>/../share/usersigd/ui, usersigd's default
# ui_dir): the files it serves, not the README's screenshots.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/admin-api/ui/ DESTINATION ${CMAKE_INSTALL_DATADIR}/usersigd/ui
        FILES_MATCHING PATTERN "*.html" PATTERN "*.css" PATTERN "*.js" PATTERN "*.svg"
        PATTERN "screenshots" EXCLUDE)
# Man pages gzip-compressed (gzip -9n: reproducible), as Debian and man-db expect them.
find_program(USERSIG_GZIP gzip REQUIRED)
foreach(page usersig.1 usersigd.8)
  string(REGEX REPLACE ".*\\." "" section ${page})
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/dist/${page}.gz
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/dist
                     COMMAND ${USERSIG_GZIP} -9nc ${CMAKE_SOURCE_DIR}/server/dist/${page} >
                             ${CMAKE_BINARY_DIR}/dist/${page}.gz
                     DEPENDS ${CMAKE_SOURCE_DIR}/server/dist/${page} VERBATIM)
  list(APPEND USERSIG_MAN_PAGES ${CMAKE_BINARY_DIR}/dist/${page}.gz)
  install(FILES ${CMAKE_BINARY_DIR}/dist/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${USERSIG_MAN_PAGES})

# usersig.pc and the systemd unit name absolute paths, and the prefix is only known at install
# time (`cmake --install --prefix P`, CPack's /usr): both are written then, into the build tree,
# and installed from there. The unit goes where systemd looks for units of the prefix
# (/usr/lib/systemd/system for /usr), its ExecStart naming the installed usersigd.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(USERSIG_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(USERSIG_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(USERSIG_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(USERSIG_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(USERSIG_DIST_OUT ${CMAKE_BINARY_DIR}/dist)
install(CODE "
  set(USERSIG_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(USERSIG_PC_LIBDIR [[${USERSIG_PC_LIBDIR}]])
  set(USERSIG_PC_INCLUDEDIR [[${USERSIG_PC_INCLUDEDIR}]])
  set(PROJECT_VERSION [[${PROJECT_VERSION}]])
  configure_file([[${CMAKE_SOURCE_DIR}/server/dist/usersig.pc.in]]
                 [[${USERSIG_DIST_OUT}/usersig.pc]] @ONLY)
  file(READ [[${CMAKE_SOURCE_DIR}/server/dist/usersigd.service]] _unit)
  string(REPLACE \"ExecStart=/usr/bin/usersigd \"
         \"ExecStart=\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/usersigd \" _unit \"\${_unit}\")
  file(WRITE [[${USERSIG_DIST_OUT}/usersigd.service]] \"\${_unit}\")
")
install(FILES ${USERSIG_DIST_OUT}/usersig.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${USERSIG_DIST_OUT}/usersigd.service DESTINATION lib/systemd/system)

# cpack -G DEB: one package of the whole, installed under /usr, with the usersigd system user
# made by its postinst and the hardened systemd unit above.
set(CPACK_PACKAGE_NAME usersigd)
set(CPACK_PACKAGE_VENDOR "usersigd")
set(CPACK_PACKAGE_CONTACT "usersigd maintainers <maintainers@usersigd.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "UserSig key management and signing server for Tencent Cloud Chat / TRTC")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "postgresql-15")
# Building against libusersig: usersig.pc requires libcrypto.pc and zlib.pc.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "pkg-config, libssl-dev, zlib1g-dev")
# libusersig.so.0 in the shlibs file (for packages built against it) and the ldconfig trigger
# that puts it in the loader's cache; binaries stripped.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "usersigd keeps Tencent Cloud Chat app keys versioned and encrypted in
PostgreSQL, signs and verifies UserSig tokens one at a time or in bulk, and
keeps a tamper-evident audit log. Also ships the offline usersig tool and
libusersig, the codec as a C library (usersig.h, shared and static,
pkg-config usersig).")
# The maintainer scripts are ours, so CPack adds no ldconfig call: the trigger does it.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/server/dist/debian/postinst ${CMAKE_SOURCE_DIR}/server/dist/debian/postrm
    ${CMAKE_SOURCE_DIR}/server/dist/debian/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
