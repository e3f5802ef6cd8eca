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

  /** A demo tenant: its id, its default adapter (trainer/fixtures/adapters/{id}), its key. */
  public record Demo(String tenant, String adapter, String key) {}

  /** The published demo tenants (README); their keys must never open a non-demo start. */
  public static final java.util.List<Demo> DEMO =
      java.util.List.of(
          new Demo("acme", "pirate", "pg-demo-acme"),
          new Demo("globex", "formal", "pg-demo-globex"),
          new Demo("initech", "json", "pg-demo-initech"),
          new Demo("xuetang", "tutor", "pg-demo-xuetang"));

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
    for (Demo d : DEMO) {
      tenants.ensure(
          d.tenant(),
          d.tenant().substring(0, 1).toUpperCase() + d.tenant().substring(1),
          d.adapter(),
          true);
      tenants.storeKey(d.tenant(), d.key());
      Path adapter = dir.resolve(d.tenant());
      registry.register(
          d.tenant(),
          d.adapter(),
          Files.readAllBytes(adapter.resolve("adapter_config.json")),
          Files.readAllBytes(adapter.resolve("adapter_model.safetensors")),
          baseModel,
          new AdapterRegistry.Origin("demo", "demo"),
          registry.active(d.tenant(), d.adapter()).isEmpty(),
          null);
      LOG.info(
          "demo tenant "
              + d.tenant()
              + " with its documented key, default adapter '"
              + d.adapter()
              + "'");
    }
  }

  /**
   * Outside the demo profile the documented demo keys must not open anything: a database that still
   * accepts one (a demo database reused for production) stops the start-up.
   */
  private void refuseDemoKeys() {
    for (Demo d : DEMO) {
      if (tenants.authenticate(d.key()).isPresent()) {
        throw new IllegalStateException(
            "the database accepts the published demo key of tenant '"
                + d.tenant()
                + "': it was seeded by the demo profile. Revoke the demo keys (DELETE"
                + " /admin/tenants/"
                + d.tenant()
                + "/keys/{keyId}) from a demo start, or use another database, before serving"
                + " without the demo profile.");
      }
    }
  }
}
