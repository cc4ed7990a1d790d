/*
 * `-object disco,id=ID,config=FILE,node=NAME,vm=NAME[,stats=FILE]`: makes
 * this QEMU process node NAME of the spanning VM described in the cluster
 * config (disco-node builds this command line). complete() loads and
 * checks the config and works out which vCPUs are local; the machine-init-
 * done notifier then parks the others, puts guest RAM under the DSM and
 * joins the cluster (disco-ram.c, disco-machine.c).
 */
#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qom/object_interfaces.h"
#include "qemu/module.h"
#include "sysemu/sysemu.h"
#include "hw/boards.h"
#include "hw/core/cpu.h"

#include "disco-internal.h"
#include "rpc/log.h"

#define TYPE_DISCO "disco"
OBJECT_DECLARE_SIMPLE_TYPE(DiscoObject, DISCO)

struct DiscoObject {
    Object parent_obj;
    char *config, *node, *vm, *stats;
};

struct disco_node disco = { .self = -1 };
unsigned disco_role;
bool disco_test_no_tb_invalidate;

static Notifier disco_init_done_notifier;

static void disco_machine_init_done_cb(Notifier *n, void *unused)
{
    CPUState *cs;

    if (current_machine->smp.cpus != disco.vm->vcpus ||
        current_machine->ram_size != disco.vm->memory_bytes) {
        disco_die("vm %s has %d vCPUs and %" PRIu64 " bytes of memory, but -smp/-m say "
                  "%u and " RAM_ADDR_FMT " (every node must build the same machine)",
                  disco.vm->name, disco.vm->vcpus, disco.vm->memory_bytes,
                  current_machine->smp.cpus, current_machine->ram_size);
    }
    CPU_FOREACH(cs) {
        qatomic_set(&cs->disco_parked, !disco_vcpu_is_local(cs->cpu_index));
    }
    disco_irq_init();
    disco_session_create();
    disco_io_init_done();
    disco_ram_init_done();     /* guest RAM: a client of the session */
    disco_join();              /* returns once every node is up */
    disco_numa_measure();
    disco_machine_init_done();
}

static void disco_complete(UserCreatable *uc, Error **errp)
{
    DiscoObject *o = DISCO(uc);
    char err[512];
    int rc;

    if (disco_is(DISCO_NODE)) {
        error_setg(errp, "disco: only one disco object per process");
        return;
    }
    if (!o->config || !o->node || !o->vm) {
        error_setg(errp, "disco: the config, node and vm properties are required");
        return;
    }
    rc = cluster_config_load(o->config, &disco.cfg, err, sizeof(err));
    if (rc < 0) {
        error_setg(errp, "disco: %s", err);
        return;
    }
    disco.self = cluster_config_find_node(disco.cfg, o->node);
    disco.vm_index = cluster_config_find_vm(disco.cfg, o->vm);
    if (disco.self < 0 || disco.vm_index < 0) {
        error_setg(errp, "disco: %s: no %s \"%s\" in this cluster config", o->config,
                   disco.self < 0 ? "node" : "vm", disco.self < 0 ? o->node : o->vm);
        return;
    }
    disco.vm = &disco.cfg->vms[disco.vm_index];
    if (!(disco.vm->node_mask & (1ULL << disco.self))) {
        error_setg(errp, "disco: node %s takes no part in vm %s", o->node, o->vm);
        return;
    }
    disco.master = disco.vm->master_node;
    cluster_vm_node_vcpus(disco.cfg, disco.vm, disco.self, &disco.cpu_first,
                          &disco.cpu_count);
    disco.stats_path = o->stats ? g_strdup(o->stats) : NULL;
    disco_log_set_node(disco.cfg->nodes[disco.self].name);

    disco_role = disco.self == disco.master ? DISCO_MASTER : DISCO_NONMASTER;
    disco_inbox_init();
    disco_init_done_notifier.notify = disco_machine_init_done_cb;
    qemu_add_machine_init_done_notifier(&disco_init_done_notifier);
}

#define DISCO_STR_PROP(field)                                               \
    static char *disco_get_##field(Object *obj, Error **errp)              \
    {                                                                       \
        return g_strdup(DISCO(obj)->field);                                 \
    }                                                                       \
    static void disco_set_##field(Object *obj, const char *v, Error **errp) \
    {                                                                       \
        g_free(DISCO(obj)->field);                                          \
        DISCO(obj)->field = g_strdup(v);                                    \
    }
DISCO_STR_PROP(config)
DISCO_STR_PROP(node)
DISCO_STR_PROP(vm)
DISCO_STR_PROP(stats)

/* read-only: the statistics so far (QMP qom-get /objects/ID counters) */
static char *disco_get_counters(Object *obj, Error **errp)
{
    return disco_ram_counters();
}

static void disco_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->complete = disco_complete;
    object_class_property_add_str(oc, "config", disco_get_config, disco_set_config);
    object_class_property_add_str(oc, "node", disco_get_node, disco_set_node);
    object_class_property_add_str(oc, "vm", disco_get_vm, disco_set_vm);
    object_class_property_add_str(oc, "stats", disco_get_stats, disco_set_stats);
    object_class_property_add_str(oc, "counters", disco_get_counters, NULL);
}

static const TypeInfo disco_type_info = {
    .parent = TYPE_OBJECT,
    .name = TYPE_DISCO,
    .instance_size = sizeof(DiscoObject),
    .class_init = disco_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    }
};

/*
 * `-object disco-test-hooks,id=ID[,tb-invalidate=off]`: switches that break
 * the spanning VM on purpose, for the tests that show what a mechanism is
 * for (tests/system/smc_without_invalidation_test.sh). Test only; they
 * are never read from the environment.
 */
#define TYPE_DISCO_TEST_HOOKS "disco-test-hooks"

static bool disco_test_get_tb_invalidate(Object *obj, Error **errp)
{
    return !disco_test_no_tb_invalidate;
}

static void disco_test_set_tb_invalidate(Object *obj, bool value, Error **errp)
{
    disco_test_no_tb_invalidate = !value;
}

static void disco_test_hooks_class_init(ObjectClass *oc, void *data)
{
    object_class_property_add_bool(oc, "tb-invalidate", disco_test_get_tb_invalidate,
                                   disco_test_set_tb_invalidate);
}

static const TypeInfo disco_test_hooks_type_info = {
    .parent = TYPE_OBJECT,
    .name = TYPE_DISCO_TEST_HOOKS,
    .instance_size = sizeof(Object),
    .class_init = disco_test_hooks_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    }
};

static void disco_register_types(void)
{
    type_register_static(&disco_type_info);
    type_register_static(&disco_test_hooks_type_info);
}
type_init(disco_register_types)
