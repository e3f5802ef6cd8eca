import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

/**
 * The local broker's ACLs: each principal may do what its job needs and nothing more. Run by
 * {@code deploy/local/kafka start} with the admin's client config (java's source launcher, one
 * JVM for every binding; creating an existing binding is a no-op).
 *
 * <p>Topic and group names are prefixes, so the tests' per-run topics ({@code
 * prefixgate.adapters.<run>}) get the same rights as the production names. The same bindings,
 * as {@code kafka-acls.sh} commands, are in docs/security.md.
 */
public class Acls {
  record Grant(String user, ResourceType type, String prefix, AclOperation... ops) {}

  static final List<Grant> GRANTS =
      List.of(
          // The gateway follows adapter events, dead-letters what it refuses, asks for retrains
          // and follows their status. It never writes adapter events.
          new Grant("gateway", ResourceType.TOPIC, "prefixgate.adapters", op("READ"), op("DESCRIBE"), op("CREATE"), op("DESCRIBE_CONFIGS")),
          new Grant("gateway", ResourceType.TOPIC, "prefixgate.dead-letters", op("WRITE"), op("DESCRIBE"), op("CREATE")),
          new Grant("gateway", ResourceType.TOPIC, "prefixgate.retrain-requests", op("WRITE"), op("DESCRIBE"), op("CREATE")),
          new Grant("gateway", ResourceType.TOPIC, "prefixgate.training-status", op("READ"), op("DESCRIBE"), op("CREATE")),
          new Grant("gateway", ResourceType.GROUP, "prefixgate-gateway", op("READ"), op("DESCRIBE")),
          // The trainer reads retrain requests and its own status history, and is the only
          // principal that publishes adapter events.
          new Grant("trainer", ResourceType.TOPIC, "prefixgate.retrain-requests", op("READ"), op("DESCRIBE")),
          new Grant("trainer", ResourceType.TOPIC, "prefixgate.training-status", op("READ"), op("WRITE"), op("DESCRIBE"), op("CREATE")),
          new Grant("trainer", ResourceType.TOPIC, "prefixgate.adapters", op("WRITE"), op("DESCRIBE"), op("CREATE")),
          new Grant("trainer", ResourceType.TOPIC, "prefixgate.retrain-dead-letters", op("WRITE"), op("DESCRIBE"), op("CREATE")),
          new Grant("trainer", ResourceType.GROUP, "prefixgate-trainers", op("READ"), op("DESCRIBE")),
          // An operator's tooling may ask for retraining directly and read what came of it.
          new Grant("ops", ResourceType.TOPIC, "prefixgate.retrain-requests", op("WRITE"), op("DESCRIBE"), op("CREATE")),
          new Grant("ops", ResourceType.TOPIC, "prefixgate.training-status", op("READ"), op("DESCRIBE")),
          new Grant("ops", ResourceType.TOPIC, "prefixgate.dead-letters", op("READ"), op("DESCRIBE")),
          new Grant("ops", ResourceType.TOPIC, "prefixgate.retrain-dead-letters", op("READ"), op("DESCRIBE")),
          new Grant("ops", ResourceType.GROUP, "prefixgate-ops", op("READ"), op("DESCRIBE")));
  // "stranger" authenticates but has no binding: the tests use it to show that a valid login is
  // not enough to publish.

  static AclOperation op(String name) {
    return AclOperation.valueOf(name);
  }

  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    try (var in = Files.newInputStream(Path.of(args[0]))) {
      p.load(in);
    }
    List<AclBinding> bindings = new ArrayList<>();
    for (Grant g : GRANTS) {
      for (AclOperation o : g.ops()) {
        bindings.add(
            new AclBinding(
                new ResourcePattern(g.type(), g.prefix(), PatternType.PREFIXED),
                new AccessControlEntry("User:" + g.user(), "*", o, AclPermissionType.ALLOW)));
      }
    }
    try (Admin admin = Admin.create(p)) {
      admin.createAcls(bindings).all().get(60, TimeUnit.SECONDS);
    }
    System.err.println("Kafka ACLs: " + bindings.size() + " bindings for gateway, trainer, ops");
  }
}
