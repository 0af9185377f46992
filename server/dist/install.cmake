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
install(FILES ${CMAKE_SOURCE_DIR}/server/dist/usersig.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/server/dist/usersigd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
# The unit goes where systemd looks for units of this prefix (/usr: /usr/lib/systemd/system).
install(FILES ${CMAKE_SOURCE_DIR}/server/dist/usersigd.service
        DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)

# pkg-config: `pkg-config --cflags --libs usersig` (add --static for libusersig.a).
configure_file(${CMAKE_SOURCE_DIR}/server/dist/usersig.pc.in ${CMAKE_BINARY_DIR}/usersig.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/usersig.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

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
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "usersigd keeps Tencent Cloud Chat app keys versioned and encrypted in PostgreSQL, signs and
 verifies UserSig tokens one at a time or in bulk, and keeps a tamper-evident audit log.
 Also ships the offline usersig tool and libusersig, the codec as a C library.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/server/dist/debian/postinst ${CMAKE_SOURCE_DIR}/server/dist/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
