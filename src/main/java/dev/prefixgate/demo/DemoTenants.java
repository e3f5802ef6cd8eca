package dev.prefixgate.demo;

import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.adapter.AdapterRegistry;
import dev.prefixgate.engine.BaseModel;
import dev.prefixgate.tenant.Tenants;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.logging.Logger;

/**
 * Seeds the demo tenants with fixed, documented keys and their fixture adapters, through the same
 * registry code as an upload. Idempotent: a restart finds everything in place.
 */
@ApplicationScoped
public class DemoTenants {
  private static final Logger LOG = Logger.getLogger(DemoTenants.class.getName());

  /** tenant id, adapter name, documented API key. */
  public static final String[][] DEMO = {
    {"acme", "pirate", "pg-demo-acme"},
    {"globex", "formal", "pg-demo-globex"},
    {"initech", "json", "pg-demo-initech"},
    {"xuetang", "tutor", "pg-demo-xuetang"},
  };

  @Inject PrefixgateConfig config;
  @Inject Tenants tenants;
  @Inject AdapterRegistry registry;
  @Inject BaseModel baseModel;

  void seed(@Observes StartupEvent ignored) throws Exception {
    if (!config.demo().enabled()) {
      refuseDemoKeys();
      return;
    }
    Path dir = Path.of(config.demo().adaptersDir());
    for (String[] d : DEMO) {
      tenants.ensure(d[0], d[0].substring(0, 1).toUpperCase() + d[0].substring(1), d[1], true);
      tenants.storeKey(d[0], d[2]);
      Path adapter = dir.resolve(d[0]);
      registry.register(
          d[0],
          d[1],
          Files.readAllBytes(adapter.resolve("adapter_config.json")),
          Files.readAllBytes(adapter.resolve("adapter_model.safetensors")),
          baseModel,
          new AdapterRegistry.Origin("demo", "demo"),
          registry.active(d[0], d[1]).isEmpty(),
          null);
      LOG.info("demo tenant " + d[0] + " with its documented key, default adapter '" + d[1] + "'");
    }
  }

  /**
   * Outside the demo profile the documented demo keys must not open anything: a database that still
   * accepts one (a demo database reused for production) stops the start-up.
   */
  private void refuseDemoKeys() {
    for (String[] d : DEMO) {
      if (tenants.authenticate(d[2]).isPresent()) {
        throw new IllegalStateException(
            "the database accepts the published demo key of tenant '"
                + d[0]
                + "': it was seeded by the demo profile. Revoke the demo keys (DELETE"
                + " /admin/tenants/"
                + d[0]
                + "/keys/{keyId}) from a demo start, or use another database, before serving"
                + " without the demo profile.");
      }
    }
  }
}
