package dev.prefixgate.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.tenant.RegistryDatabase;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HTTPGetAction;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Namespace;
import io.fabric8.kubernetes.api.model.PersistentVolumeClaim;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyIngressRule;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.smallrye.config.WithDefault;
import java.io.IOException;
import java.io.Reader;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Kubernetes manifests, checked without a cluster: each overlay of {@code deploy/k8s} is
 * rendered with the small part of kustomize it uses ({@code resources}, {@code namespace}, and
 * strategic-merge {@code patches}; anything else in a kustomization fails here), every core object
 * is parsed with the fabric8 Kubernetes model and refused if it has a field the model does not know
 * (a typo'd field is otherwise silently ignored by the API server's older clients and by this
 * model's catch-all map), and the cross-references are checked against the application itself:
 * ports, health paths, environment variable names, secret names and keys, topic names and sizes,
 * Kafka users and ACLs, the autoscaler's metric.
 *
 * <p>Strimzi ({@code Kafka}, {@code KafkaNodePool}, {@code KafkaTopic}, {@code KafkaUser}) and
 * CloudNativePG ({@code Cluster}) objects have no model here: their fields are checked against the
 * lists of the fields these manifests use, written from the operators' API references, not from
 * their CRD schemas.
 */
class KubernetesManifestsTest {
  static final Path ROOT = Path.of("").toAbsolutePath();
  static final Path K8S = ROOT.resolve("deploy/k8s");
  static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

  static final Map<String, Class<? extends HasMetadata>> MODELS =
      Map.of(
          "v1/Namespace", Namespace.class,
          "v1/Secret", Secret.class,
          "v1/Service", Service.class,
          "v1/PersistentVolumeClaim", PersistentVolumeClaim.class,
          "apps/v1/Deployment", Deployment.class,
          "policy/v1/PodDisruptionBudget", PodDisruptionBudget.class,
          "autoscaling/v2/HorizontalPodAutoscaler", HorizontalPodAutoscaler.class,
          "networking.k8s.io/v1/NetworkPolicy", NetworkPolicy.class);

  /** Custom resources: the spec fields each may use (from the Strimzi and CNPG API references). */
  static final Map<String, Set<String>> CUSTOM_SPEC_FIELDS =
      Map.of(
          "kafka.strimzi.io/v1beta2/Kafka",
              Set.of("kafka", "entityOperator", "cruiseControl", "kafkaExporter", "clusterCa"),
          "kafka.strimzi.io/v1beta2/KafkaNodePool", Set.of("replicas", "roles", "storage"),
          "kafka.strimzi.io/v1beta2/KafkaTopic",
              Set.of("topicName", "partitions", "replicas", "config"),
          "kafka.strimzi.io/v1beta2/KafkaUser", Set.of("authentication", "authorization", "quotas"),
          "postgresql.cnpg.io/v1/Cluster",
              Set.of(
                  "instances",
                  "storage",
                  "bootstrap",
                  "primaryUpdateStrategy",
                  "resources",
                  "postgresql",
                  "monitoring"));

  /** One rendered overlay: the raw objects, and the typed ones by "Kind/name". */
  record Rendered(List<ObjectNode> raw, Map<String, HasMetadata> typed) {
    <T extends HasMetadata> T get(Class<T> type, String name) {
      HasMetadata o = typed.get(type.getSimpleName() + "/" + name);
      assertNotNull(o, "no " + type.getSimpleName() + " named " + name + " in " + typed.keySet());
      return type.cast(o);
    }

    List<ObjectNode> custom(String kind) {
      return raw.stream().filter(o -> o.path("kind").asText().equals(kind)).toList();
    }

    ObjectNode custom(String kind, String name) {
      return custom(kind).stream()
          .filter(o -> o.path("metadata").path("name").asText().equals(name))
          .findFirst()
          .orElseThrow(() -> new AssertionError("no " + kind + " named " + name));
    }
  }

  // --- the kustomize subset -------------------------------------------------------------------

  static final Set<String> KUSTOMIZATION_FIELDS =
      Set.of("apiVersion", "kind", "namespace", "resources", "patches");

  /** What {@code kubectl kustomize dir} prints, for the fields this project uses. */
  static List<ObjectNode> render(Path dir) throws IOException {
    ObjectNode k = (ObjectNode) YAML.readTree(dir.resolve("kustomization.yaml").toFile());
    for (Iterator<String> it = k.fieldNames(); it.hasNext(); ) {
      String f = it.next();
      assertTrue(
          KUSTOMIZATION_FIELDS.contains(f),
          dir + ": kustomization field '" + f + "' is not in the subset this test renders");
    }
    List<ObjectNode> out = new ArrayList<>();
    for (JsonNode r : k.path("resources")) {
      Path p = dir.resolve(r.asText()).normalize();
      if (Files.isDirectory(p)) out.addAll(render(p));
      else out.addAll(readAll(p));
    }
    for (JsonNode patch : k.path("patches")) {
      assertEquals(Set.of("path"), fields(patch), dir + ": only file patches are rendered here");
      List<ObjectNode> docs = readAll(dir.resolve(patch.get("path").asText()));
      assertEquals(1, docs.size(), "one object per patch file");
      ObjectNode p = docs.get(0);
      List<ObjectNode> targets =
          out.stream()
              .filter(
                  o -> key(o).equals(key(p)) && o.path("apiVersion").equals(p.path("apiVersion")))
              .toList();
      assertEquals(1, targets.size(), "patch " + key(p) + " must match exactly one object");
      merge(targets.get(0), p);
    }
    if (k.hasNonNull("namespace")) {
      for (ObjectNode o : out) {
        if (!o.path("kind").asText().equals("Namespace")) {
          ((ObjectNode) o.get("metadata")).put("namespace", k.get("namespace").asText());
        }
      }
    }
    return out;
  }

  static List<ObjectNode> readAll(Path file) throws IOException {
    List<ObjectNode> docs = new ArrayList<>();
    try (Reader r = Files.newBufferedReader(file);
        var parser = YAML.getFactory().createParser(r)) {
      for (Iterator<JsonNode> it = YAML.readValues(parser, JsonNode.class); it.hasNext(); ) {
        JsonNode n = it.next();
        if (n == null || n.isNull() || n.isMissingNode()) continue;
        assertTrue(n.isObject(), file + ": every document is an object");
        docs.add((ObjectNode) n);
      }
    }
    assertFalse(docs.isEmpty(), file + " has no object");
    return docs;
  }

  /**
   * A strategic merge patch, as kustomize applies it for these manifests: objects merge field by
   * field, lists of containers, env vars, volumes, mounts and ports merge by their key (the
   * Kubernetes API's patchMergeKey for those fields), every other list is replaced.
   */
  static void merge(ObjectNode target, ObjectNode patch) {
    for (Iterator<Map.Entry<String, JsonNode>> it = patch.fields(); it.hasNext(); ) {
      var e = it.next();
      JsonNode t = target.get(e.getKey());
      JsonNode p = e.getValue();
      if (p.isNull()) {
        target.remove(e.getKey());
      } else if (p.isObject() && t != null && t.isObject()) {
        merge((ObjectNode) t, (ObjectNode) p);
      } else if (p.isArray() && t != null && t.isArray() && mergeKey(e.getKey(), p) != null) {
        String mk = mergeKey(e.getKey(), p);
        for (JsonNode item : p) {
          ObjectNode match = null;
          for (JsonNode existing : t) {
            if (existing.path(mk).equals(item.path(mk))) match = (ObjectNode) existing;
          }
          if (match != null) merge(match, (ObjectNode) item);
          else ((ArrayNode) t).add(item.deepCopy());
        }
      } else {
        target.set(e.getKey(), p.deepCopy());
      }
    }
  }

  static String mergeKey(String field, JsonNode items) {
    return switch (field) {
      case "containers", "initContainers", "env", "volumes" -> "name";
      case "volumeMounts" -> "mountPath";
      case "ports" -> items.path(0).has("containerPort") ? "containerPort" : "port";
      default -> null;
    };
  }

  static String key(JsonNode o) {
    return o.path("kind").asText() + "/" + o.path("metadata").path("name").asText();
  }

  static Set<String> fields(JsonNode n) {
    Set<String> s = new TreeSet<>();
    n.fieldNames().forEachRemaining(s::add);
    return s;
  }

  // --- strict parsing -------------------------------------------------------------------------

  static Rendered parse(List<ObjectNode> raw) throws Exception {
    Map<String, HasMetadata> typed = new HashMap<>();
    for (ObjectNode o : raw) {
      String type = o.path("apiVersion").asText() + "/" + o.path("kind").asText();
      Class<? extends HasMetadata> model = MODELS.get(type);
      if (model == null) {
        Set<String> allowed = CUSTOM_SPEC_FIELDS.get(type);
        assertNotNull(allowed, key(o) + ": " + type + " is neither a core kind nor a known CRD");
        assertTrue(
            allowed.containsAll(fields(o.path("spec"))),
            key(o) + ": spec fields " + fields(o.path("spec")) + " beyond " + allowed);
        assertTrue(Set.of("apiVersion", "kind", "metadata", "spec").containsAll(fields(o)), key(o));
        continue;
      }
      HasMetadata m = YAML.treeToValue(o, model);
      List<String> unknown = new ArrayList<>();
      unknownFields(m, key(o), unknown, new HashSet<>());
      assertTrue(unknown.isEmpty(), "fields the Kubernetes model does not know: " + unknown);
      assertNull(typed.put(key(o), m), "two objects named " + key(o));
    }
    return new Rendered(raw, typed);
  }

  /** fabric8 keeps unknown fields in additionalProperties instead of refusing them. */
  static void unknownFields(Object o, String path, List<String> unknown, Set<Object> seen)
      throws Exception {
    if (o == null || !seen.add(System.identityHashCode(o) + "@" + o.getClass())) return;
    if (o instanceof Collection<?> c) {
      int i = 0;
      for (Object x : c) unknownFields(x, path + "[" + i++ + "]", unknown, seen);
      return;
    }
    if (o instanceof Map<?, ?> m) {
      for (var e : m.entrySet())
        unknownFields(e.getValue(), path + "." + e.getKey(), unknown, seen);
      return;
    }
    if (!o.getClass().getName().startsWith("io.fabric8.")) return;
    for (Method g : o.getClass().getMethods()) {
      if (g.getParameterCount() != 0
          || Modifier.isStatic(g.getModifiers())
          || !g.getName().startsWith("get")
          || g.getDeclaringClass() == Object.class) continue;
      Object v;
      try {
        v = g.invoke(o);
      } catch (InvocationTargetException notAProperty) {
        continue; // a computed getter (e.g. a Quantity's amount), not a field
      }
      if (g.getName().equals("getAdditionalProperties")) {
        if (v instanceof Map<?, ?> extra && !extra.isEmpty()) {
          unknown.add(path + ": " + extra.keySet());
        }
      } else {
        unknownFields(v, path + "." + g.getName().substring(3), unknown, seen);
      }
    }
  }

  // --- what the application says ----------------------------------------------------------------

  static Properties applicationProperties() throws IOException {
    Properties p = new Properties();
    try (Reader r =
        Files.newBufferedReader(ROOT.resolve("src/main/resources/application.properties"))) {
      p.load(r);
    }
    return p;
  }

  /** Every PREFIXGATE_* variable the gateway reads: one per leaf of {@link PrefixgateConfig}. */
  static Map<String, Method> gatewayEnvNames() {
    Map<String, Method> names = new HashMap<>();
    collectEnv(PrefixgateConfig.class, "PREFIXGATE", names);
    return names;
  }

  static void collectEnv(Class<?> group, String prefix, Map<String, Method> out) {
    for (Method m : group.getDeclaredMethods()) {
      if (m.isSynthetic() || Modifier.isStatic(m.getModifiers())) continue;
      String name =
          prefix + "_" + m.getName().replaceAll("([a-z0-9])([A-Z])", "$1_$2").toUpperCase();
      Class<?> type = m.getReturnType();
      if (type.isInterface() && type.getEnclosingClass() == PrefixgateConfig.class) {
        collectEnv(type, name, out);
      } else {
        out.put(name, m);
      }
    }
  }

  /** The Kafka settings as the gateway sees them with nothing configured (the defaults). */
  static PrefixgateConfig.Kafka kafkaDefaults() {
    return (PrefixgateConfig.Kafka)
        java.lang.reflect.Proxy.newProxyInstance(
            PrefixgateConfig.Kafka.class.getClassLoader(),
            new Class<?>[] {PrefixgateConfig.Kafka.class},
            (proxy, m, args) -> {
              WithDefault d = m.getAnnotation(WithDefault.class);
              if (m.getReturnType() == Optional.class) return Optional.empty();
              assertNotNull(d, m.getName() + " has no default");
              if (m.getReturnType() == int.class) return Integer.parseInt(d.value());
              if (m.getReturnType() == boolean.class) return Boolean.parseBoolean(d.value());
              return d.value();
            });
  }

  static int adapterMessageLimit() throws Exception {
    Method limit =
        dev.prefixgate.adapter.AdapterEvents.class.getDeclaredMethod(
            "messageLimit", PrefixgateConfig.Kafka.class);
    limit.setAccessible(true);
    return (int) limit.invoke(null, kafkaDefaults());
  }

  /** The trainer worker's default topics, from its source (it is another Maven module). */
  static Map<String, String> workerTopicDefaults() throws IOException {
    String src =
        Files.readString(
            ROOT.resolve("trainer/src/main/java/dev/prefixgate/trainer/WorkerConfig.java"));
    Map<String, String> topics = new HashMap<>();
    Matcher m = Pattern.compile("get\\.apply\\(\"([a-z-]+-topic)\", \"([^\"]+)\"\\)").matcher(src);
    while (m.find()) topics.put(m.group(1), m.group(2));
    assertEquals(4, topics.size(), "the worker's four topics: " + topics);
    return topics;
  }

  /** Every variable the worker reads: PREFIXGATE_ + each option's name, and its two secrets. */
  static Set<String> workerEnvNames() throws IOException {
    String src =
        Files.readString(
            ROOT.resolve("trainer/src/main/java/dev/prefixgate/trainer/WorkerConfig.java"));
    Set<String> names =
        new HashSet<>(Set.of("PREFIXGATE_TRAINER_KEY", "PREFIXGATE_KAFKA_PASSWORD"));
    Matcher m = Pattern.compile("get\\.apply\\(\"([a-z-]+)\"").matcher(src);
    while (m.find()) names.add("PREFIXGATE_" + m.group(1).toUpperCase().replace('-', '_'));
    assertTrue(names.contains("PREFIXGATE_KAFKA_BOOTSTRAP"), names.toString());
    return names;
  }

  /** The local broker's grants (deploy/local/kafka-broker/Acls.java): user → ACL lines. */
  static Map<String, Set<String>> localGrants() throws IOException {
    String src = Files.readString(ROOT.resolve("deploy/local/kafka-broker/Acls.java"));
    Map<String, Set<String>> grants = new HashMap<>();
    Matcher m =
        Pattern.compile(
                "new Grant\\(\"(\\w+)\", ResourceType\\.(\\w+), \"([^\"]+)\", ((?:op\\(\"\\w+\"\\),? ?)+)\\)")
            .matcher(src);
    while (m.find()) {
      Matcher op = Pattern.compile("op\\(\"(\\w+)\"\\)").matcher(m.group(4));
      while (op.find()) {
        // Topics are declared as KafkaTopics: no principal needs Create in a cluster.
        if (op.group(1).equals("CREATE")) continue;
        grants
            .computeIfAbsent(m.group(1), u -> new TreeSet<>())
            .add(m.group(2).toLowerCase() + " " + m.group(3) + " " + op.group(1));
      }
    }
    assertEquals(Set.of("gateway", "trainer", "ops"), grants.keySet());
    return grants;
  }

  // --- the checks -----------------------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {"cpu", "gpu"})
  void everyObjectParsesStrictlyAndTheReferencesHold(String overlay) throws Exception {
    Rendered r = parse(render(K8S.resolve("overlays").resolve(overlay)));
    Properties app = applicationProperties();
    int httpPort = Integer.parseInt(app.getProperty("quarkus.http.port"));
    assertEquals("true", app.getProperty("quarkus.management.enabled"));
    int managementPort = Integer.parseInt(app.getProperty("quarkus.management.port"));
    String health =
        "/"
            + app.getProperty("quarkus.http.non-application-root-path", "q")
            + "/"
            + app.getProperty("quarkus.smallrye-health.root-path", "health");

    Deployment gateway = r.get(Deployment.class, "prefixgate-gateway");
    Container gw = container(gateway, "gateway");
    Map<String, Integer> ports = new HashMap<>();
    for (ContainerPort p : gw.getPorts()) ports.put(p.getName(), p.getContainerPort());
    assertEquals(Map.of("http", httpPort, "management", managementPort), ports);

    // Probes on the management port, at Quarkus's health paths.
    assertProbe(gw.getReadinessProbe(), health + "/ready", managementPort, ports);
    assertProbe(gw.getLivenessProbe(), health + "/live", managementPort, ports);
    assertProbe(gw.getStartupProbe(), health + "/started", managementPort, ports);

    // The public Service exposes the public port only; management has its own Service.
    Service pub = r.get(Service.class, "prefixgate-gateway");
    assertEquals(1, pub.getSpec().getPorts().size());
    assertEquals(httpPort, resolve(pub.getSpec().getPorts().get(0).getTargetPort(), ports));
    Service mgmt = r.get(Service.class, "prefixgate-gateway-management");
    assertEquals(managementPort, resolve(mgmt.getSpec().getPorts().get(0).getTargetPort(), ports));
    Map<String, String> podLabels = gateway.getSpec().getTemplate().getMetadata().getLabels();
    for (Service s : List.of(pub, mgmt)) {
      assertTrue(podLabels.entrySet().containsAll(s.getSpec().getSelector().entrySet()));
    }

    // Every PREFIXGATE_* variable is a real setting; the datasource is PostgreSQL by its URL.
    Map<String, Method> known = gatewayEnvNames();
    Map<String, EnvVar> env = new HashMap<>();
    for (EnvVar e : gw.getEnv()) env.put(e.getName(), e);
    for (String name : env.keySet()) {
      if (name.startsWith("PREFIXGATE_")) {
        assertTrue(known.containsKey(name), name + " is not a gateway setting: " + known.keySet());
      } else {
        assertTrue(
            Set.of(
                    "QUARKUS_DATASOURCE_JDBC_URL",
                    "QUARKUS_DATASOURCE_USERNAME",
                    "QUARKUS_DATASOURCE_PASSWORD",
                    "QUARKUS_SHUTDOWN_TIMEOUT",
                    "DJL_OFFLINE",
                    "DJL_CACHE_DIR")
                .contains(name),
            "unexpected variable " + name);
      }
    }
    String jdbc = env.get("QUARKUS_DATASOURCE_JDBC_URL").getValue();
    assertEquals(RegistryDatabase.POSTGRESQL, RegistryDatabase.unitFor(jdbc));
    ObjectNode db = r.custom("Cluster").get(0);
    String dbName = db.path("metadata").path("name").asText();
    assertEquals(
        "jdbc:postgresql://"
            + dbName
            + "-rw:5432/"
            + db.path("spec").path("bootstrap").path("initdb").path("database").asText(),
        jdbc);
    assertSecretRef(env.get("QUARKUS_DATASOURCE_USERNAME"), dbName + "-app", "username");
    assertSecretRef(env.get("QUARKUS_DATASOURCE_PASSWORD"), dbName + "-app", "password");

    // Kafka: the TLS + SCRAM listener, a user per client with a Secret Strimzi writes.
    ObjectNode kafka = r.custom("Kafka").get(0);
    String cluster = kafka.path("metadata").path("name").asText();
    JsonNode listener = kafka.path("spec").path("kafka").path("listeners").get(0);
    assertTrue(listener.path("tls").asBoolean());
    assertEquals("scram-sha-512", listener.path("authentication").path("type").asText());
    assertEquals(
        "simple", kafka.path("spec").path("kafka").path("authorization").path("type").asText());
    String bootstrap = cluster + "-kafka-bootstrap:" + listener.path("port").asInt();
    assertEquals(bootstrap, env.get("PREFIXGATE_KAFKA_BOOTSTRAP_SERVERS").getValue());
    assertEquals("SASL_SSL", env.get("PREFIXGATE_KAFKA_SECURITY_PROTOCOL").getValue());
    assertEquals("SCRAM-SHA-512", env.get("PREFIXGATE_KAFKA_SASL_MECHANISM").getValue());
    String gwUser = env.get("PREFIXGATE_KAFKA_USERNAME").getValue();
    r.custom("KafkaUser", gwUser);
    assertSecretRef(env.get("PREFIXGATE_KAFKA_PASSWORD"), gwUser, "password");
    assertSecretRef(
        env.get("PREFIXGATE_KAFKA_SSL_TRUSTSTORE_PASSWORD"),
        cluster + "-cluster-ca-cert",
        "ca.password");

    // Secrets: every reference names a Secret of this render, or one an operator writes.
    Map<String, Set<String>> secrets = new HashMap<>();
    for (HasMetadata o : r.typed().values()) {
      if (o instanceof Secret s) {
        Set<String> keys = new HashSet<>();
        if (s.getData() != null) keys.addAll(s.getData().keySet());
        if (s.getStringData() != null) keys.addAll(s.getStringData().keySet());
        secrets.put(s.getMetadata().getName(), keys);
      }
    }
    for (ObjectNode u : r.custom("KafkaUser")) {
      secrets.put(u.path("metadata").path("name").asText(), Set.of("password", "sasl.jaas.config"));
    }
    secrets.put(cluster + "-cluster-ca-cert", Set.of("ca.crt", "ca.p12", "ca.password"));
    secrets.put(
        dbName + "-app",
        Set.of("username", "password", "host", "port", "dbname", "uri", "jdbc-uri"));
    Deployment trainer = r.get(Deployment.class, "prefixgate-trainer");
    for (Deployment d : List.of(gateway, trainer)) {
      for (Container c : d.getSpec().getTemplate().getSpec().getContainers()) {
        for (EnvVar e : c.getEnv()) {
          if (e.getValueFrom() != null && e.getValueFrom().getSecretKeyRef() != null) {
            var ref = e.getValueFrom().getSecretKeyRef();
            assertTrue(
                secrets.getOrDefault(ref.getName(), Set.of()).contains(ref.getKey()),
                d.getMetadata().getName()
                    + " "
                    + e.getName()
                    + " → "
                    + ref.getName()
                    + "/"
                    + ref.getKey());
          }
        }
      }
      for (Volume v : d.getSpec().getTemplate().getSpec().getVolumes()) {
        if (v.getSecret() != null) {
          assertTrue(
              secrets.containsKey(v.getSecret().getSecretName()), v.getSecret().getSecretName());
        }
        if (v.getPersistentVolumeClaim() != null) {
          r.get(PersistentVolumeClaim.class, v.getPersistentVolumeClaim().getClaimName());
        }
      }
    }
    // The truststore file is a key of the mounted CA Secret.
    String truststore = env.get("PREFIXGATE_KAFKA_SSL_TRUSTSTORE_LOCATION").getValue();
    assertTrue(
        secrets
            .get(cluster + "-cluster-ca-cert")
            .contains(Path.of(truststore).getFileName().toString()));

    // Topics: the gateway's and the worker's defaults exist, on this cluster, big enough.
    Map<String, ObjectNode> topics = new HashMap<>();
    for (ObjectNode t : r.custom("KafkaTopic")) {
      assertEquals(cluster, t.path("metadata").path("labels").path("strimzi.io/cluster").asText());
      topics.put(t.path("spec").path("topicName").asText(), t);
    }
    PrefixgateConfig.Kafka k = kafkaDefaults();
    Set<String> needed = new HashSet<>(workerTopicDefaults().values());
    needed.addAll(
        List.of(k.adaptersTopic(), k.deadLettersTopic(), k.retrainTopic(), k.statusTopic()));
    assertEquals(needed, topics.keySet());
    int limit = adapterMessageLimit();
    ObjectNode adapters = topics.get(k.adaptersTopic());
    assertEquals("compact", adapters.path("spec").path("config").path("cleanup.policy").asText());
    for (String t : List.of(k.adaptersTopic(), k.deadLettersTopic())) {
      assertTrue(
          topics.get(t).path("spec").path("config").path("max.message.bytes").asInt() >= limit, t);
    }
    assertTrue(
        kafka.path("spec").path("kafka").path("config").path("message.max.bytes").asInt() >= limit);

    // The worker: its login and group, and no more replicas than the request topic has partitions.
    Map<String, String> workerEnv = new HashMap<>();
    Set<String> workerKnown = workerEnvNames();
    for (EnvVar e : container(trainer, "worker").getEnv()) {
      assertTrue(workerKnown.contains(e.getName()), e.getName() + " is not a worker setting");
      workerEnv.put(e.getName(), e.getValue());
    }
    assertEquals(bootstrap, workerEnv.get("PREFIXGATE_KAFKA_BOOTSTRAP"));
    r.custom("KafkaUser", workerEnv.get("PREFIXGATE_KAFKA_USERNAME"));
    int partitions = topics.get(k.retrainTopic()).path("spec").path("partitions").asInt();
    assertTrue(
        trainer.getSpec().getReplicas() <= partitions,
        trainer.getSpec().getReplicas() + " workers, " + partitions + " partitions");
    assertEquals(
        "http://" + pub.getMetadata().getName() + ":" + httpPort,
        workerEnv.get("PREFIXGATE_GATEWAY_URL"));
    assertEquals(
        workerEnv.get("PREFIXGATE_GATEWAY_URL"), env.get("PREFIXGATE_ADMIN_PUBLIC_URL").getValue());

    // Users and ACLs: exactly the local broker's grants, less Create.
    Map<String, Set<String>> acls = new HashMap<>();
    for (ObjectNode u : r.custom("KafkaUser")) {
      assertEquals(cluster, u.path("metadata").path("labels").path("strimzi.io/cluster").asText());
      assertEquals("scram-sha-512", u.path("spec").path("authentication").path("type").asText());
      Set<String> lines = new TreeSet<>();
      for (JsonNode a : u.path("spec").path("authorization").path("acls")) {
        assertEquals("prefix", a.path("resource").path("patternType").asText());
        for (JsonNode op : a.path("operations")) {
          lines.add(
              a.path("resource").path("type").asText()
                  + " "
                  + a.path("resource").path("name").asText()
                  + " "
                  + op.asText().replaceAll("([a-z])([A-Z])", "$1_$2").toUpperCase());
        }
      }
      acls.put(u.path("metadata").path("name").asText(), lines);
    }
    assertEquals(localGrants(), acls);

    // Scaling: the PDB and the HPA target the gateway; the metric is the engine's queue gauge.
    PodDisruptionBudget pdb = r.get(PodDisruptionBudget.class, "prefixgate-gateway");
    assertTrue(
        podLabels.entrySet().containsAll(pdb.getSpec().getSelector().getMatchLabels().entrySet()));
    HorizontalPodAutoscaler hpa = r.get(HorizontalPodAutoscaler.class, "prefixgate-gateway");
    assertEquals("Deployment", hpa.getSpec().getScaleTargetRef().getKind());
    assertEquals("prefixgate-gateway", hpa.getSpec().getScaleTargetRef().getName());
    assertTrue(pdb.getSpec().getMinAvailable().getIntVal() < hpa.getSpec().getMinReplicas());
    String metric = hpa.getSpec().getMetrics().get(0).getPods().getMetric().getName();
    String apiMetrics =
        Files.readString(ROOT.resolve("src/main/java/dev/prefixgate/api/ApiMetrics.java"));
    assertTrue(
        apiMetrics.contains("Gauge.builder(\"" + metric.replace('_', '.') + "\""),
        metric + " is not a gauge the gateway publishes");

    // Network: the management port only from a restricted peer; the public port open.
    NetworkPolicy np = r.get(NetworkPolicy.class, "prefixgate-gateway");
    assertTrue(
        podLabels
            .entrySet()
            .containsAll(np.getSpec().getPodSelector().getMatchLabels().entrySet()));
    boolean publicOpen = false;
    for (NetworkPolicyIngressRule rule : np.getSpec().getIngress()) {
      Set<Integer> rulePorts = new HashSet<>();
      rule.getPorts().forEach(p -> rulePorts.add(p.getPort().getIntVal()));
      if (rulePorts.contains(managementPort)) {
        assertFalse(rule.getFrom() == null || rule.getFrom().isEmpty(), "9000 open to everyone");
      }
      if (rulePorts.contains(httpPort) && (rule.getFrom() == null || rule.getFrom().isEmpty())) {
        publicOpen = true;
      }
    }
    assertTrue(publicOpen, "the public port must be reachable");

    // The overlay's own promise.
    var limits = gw.getResources().getLimits();
    boolean gpu = limits.containsKey("nvidia.com/gpu");
    assertEquals(overlay.equals("gpu"), gpu, "GPU limit");
    assertEquals(
        overlay.equals("gpu"),
        env.containsKey("PREFIXGATE_ENGINE_CUDA")
            && env.get("PREFIXGATE_ENGINE_CUDA").getValue().equals("true"));
    assertEquals(overlay.equals("gpu"), gw.getImage().endsWith("-gpu"), gw.getImage());

    // Every namespaced object lands in one namespace, which the render also creates.
    Set<String> namespaces = new HashSet<>();
    for (ObjectNode o : r.raw()) {
      if (!o.path("kind").asText().equals("Namespace")) {
        namespaces.add(o.path("metadata").path("namespace").asText());
      }
    }
    assertEquals(1, namespaces.size(), namespaces.toString());
    r.get(Namespace.class, namespaces.iterator().next());
  }

  @ParameterizedTest
  @ValueSource(strings = {"cpu", "gpu"})
  void aTypoInAManifestIsRefused(String overlay) throws Exception {
    List<ObjectNode> raw = render(K8S.resolve("overlays").resolve(overlay));
    ObjectNode gw =
        raw.stream().filter(o -> key(o).equals("Deployment/prefixgate-gateway")).findFirst().get();
    ObjectNode c = (ObjectNode) gw.at("/spec/template/spec/containers/0");
    c.set("readinesProbe", c.get("readinessProbe"));
    AssertionError refused = assertThrows(AssertionError.class, () -> parse(raw));
    assertTrue(refused.getMessage().contains("readinesProbe"), refused.getMessage());
  }

  static Container container(Deployment d, String name) {
    return d.getSpec().getTemplate().getSpec().getContainers().stream()
        .filter(c -> c.getName().equals(name))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no container " + name));
  }

  static int resolve(io.fabric8.kubernetes.api.model.IntOrString port, Map<String, Integer> named) {
    if (port.getIntVal() != null) return port.getIntVal();
    Integer n = named.get(port.getStrVal());
    assertNotNull(n, "no container port named " + port.getStrVal());
    return n;
  }

  static void assertProbe(Probe p, String path, int port, Map<String, Integer> named) {
    assertNotNull(p);
    HTTPGetAction get = p.getHttpGet();
    assertEquals(path, get.getPath());
    assertEquals(port, resolve(get.getPort(), named));
  }

  static void assertSecretRef(EnvVar e, String secret, String key) {
    assertNotNull(e);
    var ref = e.getValueFrom().getSecretKeyRef();
    assertEquals(secret + "/" + key, ref.getName() + "/" + ref.getKey(), e.getName());
  }
}
