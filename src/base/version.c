/* version.c - the version and commit baked in at build time (cli.h). */
#include "base/cli.h"
#include "oms_build_version.h"

const char *oms_version(void)
{
    return OMS_VERSION;
}

const char *oms_commit(void)
{
    return OMS_COMMIT;
}
