/* omsd_web - the live order page on the gRPC port: the rpc server's HTTP
 * handler (rpc.h) answering from src/web, embedded or from --web-root. */
#ifndef OMSD_WEB_H
#define OMSD_WEB_H

#include "rpc/rpc.h"

/* Makes srv answer GET/HEAD of non-method paths with the page's files, from
 * root (borrowed for srv's life; NULL: the copy built in). */
void omsd_web_attach(rpc_server *srv, const char *root);

#endif
