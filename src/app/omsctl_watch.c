#include "app/omsctl.h"
int omsctl_cmd_watch(omsctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    return 1;
}
int omsctl_cmd_track(omsctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    return 1;
}
