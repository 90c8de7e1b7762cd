/* cli_token.h - the bearer token a client program sends as call credentials
 * (rpc_channel_config.token): --token TOKEN, --token-file FILE or $OMS_TOKEN,
 * shared by omsctl, oms-bench and oms-interop-client.
 */
#ifndef OMS_CLI_TOKEN_H
#define OMS_CLI_TOKEN_H

#include <stddef.h>

/* The token to send: token (--token) if not NULL, else the contents of file
 * (--token-file) with surrounding whitespace trimmed, else $OMS_TOKEN if set
 * and not empty. Returns 0 with *out a malloc'ed token the caller frees, or
 * NULL when none was given; -1 with a reason in err (never the token itself)
 * when both flags are given, the file cannot be read, is empty or larger
 * than 64 KiB, or the token is empty or not printable ASCII (it must fit in
 * a header value). */
int oms_cli_token(const char *token, const char *file, char **out, char *err, size_t errlen);

#endif
