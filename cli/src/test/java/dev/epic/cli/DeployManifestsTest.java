package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The container args in deploy/ parse as `epic` command lines, so a renamed or removed flag fails
 * here rather than in a crash-looping pod. The entry point's additions (the expert range) and the
 * overlays' appended args are applied first. The manifests are also read as YAML, each overlay
 * rendered (its JSON patches applied to the base), and checked for what a pod needs to start and to
 * size itself.
 */
class DeployManifestsTest {
    private static final Path DEPLOY = Path.of("..", "deploy");
    /** args: [ ... ] in flow style, possibly over several lines. */
    private static final Pattern ARGS = Pattern.compile("args:\\s*(\\[[^\\]]*\\])", Pattern.DOTALL);
    /** What the entry point or an overlay adds per command. */
    private static final Map<String, List<String>> ADDED = Map.of(
            "expert-worker", List.of("--experts", "0-63"), // entrypoint.sh, from EPIC_EXPERT_SHARDS
            "coordinator", List.of("--remote-attention")); // k8s-dp-attention's patch

    @Test
    void everyContainerCommandLineParses() throws IOException {
        List<List<String>> commands = new ArrayList<>();
        try (Stream<Path> files = Files.walk(DEPLOY)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).toList()) {
                Matcher m = ARGS.matcher(Files.readString(f));
                while (m.find()) {
                    commands.add(List.of(new ObjectMapper().readValue(m.group(1), String[].class)));
                }
            }
        }
        assertEquals(List.of("attention-worker", "coordinator", "expert-worker", "quantize"),
                commands.stream().map(List::getFirst).sorted().toList());
        for (List<String> args : commands) {
            List<String> all = new ArrayList<>(args);
            all.addAll(ADDED.getOrDefault(args.getFirst(), List.of()));
            assertDoesNotThrow(() -> new CommandLine(new Main()).parseArgs(all.toArray(String[]::new)),
                    () -> "deploy/ runs `epic " + String.join(" ", all) + "`");
        }
        assertFalse(commands.isEmpty());
    }

    @Test
    void anUnknownFlagWouldFail() {
        assertThrows(CommandLine.ParameterException.class,
                () -> new CommandLine(new Main()).parseArgs("coordinator", "--model", "m", "--zk", "z", "--no-such-flag"));
    }

    private static final YAMLMapper YAML = new YAMLMapper();
    private static final List<String> OVERLAYS = List.of("k8s", "k8s-dp-attention", "k8s-gpu-experts");

    @Test
    void everyOverlaysCommandLinesParse() throws IOException {
        for (String overlay : OVERLAYS) {
            for (JsonNode c : epicContainers(render(DEPLOY.resolve(overlay)))) {
                List<String> all = new ArrayList<>(args(c));
                if (all.getFirst().equals("expert-worker")) {
                    all.addAll(ADDED.get("expert-worker"));
                }
                assertDoesNotThrow(() -> new CommandLine(new Main()).parseArgs(all.toArray(String[]::new)),
                        () -> overlay + " runs `epic " + String.join(" ", all) + "`");
            }
        }
    }

    /**
     * A headless Service publishes a pod's DNS name only once it is Ready: ZooKeeper peers (and
     * anything dialling a worker by name) must resolve before that.
     */
    @Test
    void headlessServicesPublishNotReadyAddresses() throws IOException {
        Set<String> headless = new TreeSet<>();
        for (JsonNode d : allDocuments()) {
            if (d.path("kind").asText().equals("Service") && d.path("spec").path("clusterIP").asText().equals("None")) {
                String name = d.path("metadata").path("name").asText();
                headless.add(name);
                assertTrue(d.path("spec").path("publishNotReadyAddresses").asBoolean(false), name);
            }
        }
        assertEquals(Set.of("attention-worker", "expert-worker", "zk-hs"), headless);
    }

    /**
     * --host is the bind address too: a Service DNS name does not resolve before the pod is Ready,
     * which it only becomes after binding. The pod IP always exists; --id keeps the name for placements.
     */
    @Test
    void workersBindToThePodIpUnderAStableId() throws IOException {
        Set<String> seen = new TreeSet<>();
        for (String overlay : OVERLAYS) {
            for (JsonNode c : epicContainers(render(DEPLOY.resolve(overlay)))) {
                List<String> args = args(c);
                if (!args.getFirst().endsWith("-worker")) {
                    continue;
                }
                seen.add(args.getFirst());
                assertEquals("$(POD_IP)", flag(args, "--host"), overlay + " " + args.getFirst());
                assertEquals("$(POD_NAME)", flag(args, "--id"), overlay + " " + args.getFirst());
                assertEquals("status.podIP", env(c, "POD_IP").path("valueFrom").path("fieldRef").path("fieldPath").asText());
                assertEquals("metadata.name", env(c, "POD_NAME").path("valueFrom").path("fieldRef").path("fieldPath").asText());
            }
        }
        assertEquals(Set.of("attention-worker", "expert-worker"), seen);
    }

    /**
     * Without a CPU limit the JVM sees the node's cores and sizes its spinning kernel pool to them;
     * limits equal to requests also make the pods Guaranteed (exclusive cores under the static CPU
     * manager). Every EPIC container picks its heap share, since weights live outside the heap.
     */
    @Test
    void everyContainerHasCpuAndMemoryLimitsEqualToItsRequests() throws IOException {
        List<JsonNode> docs = new ArrayList<>(allDocuments());
        for (String overlay : OVERLAYS) {
            docs.addAll(render(DEPLOY.resolve(overlay)));
        }
        int checked = 0;
        for (JsonNode c : containers(docs)) {
            String name = c.path("name").asText();
            JsonNode limits = c.path("resources").path("limits");
            JsonNode requests = c.path("resources").path("requests");
            for (String r : List.of("cpu", "memory")) {
                assertTrue(limits.hasNonNull(r), name + " has no limits." + r);
                assertEquals(requests.path(r), limits.path(r), name + ": requests." + r + " = limits." + r);
            }
            if (c.path("image").asText().matches("(.*/)?epic(-cuda)?(:.*)?")) {
                assertTrue(env(c, "EPIC_JAVA_OPTS").path("value").asText().contains("-XX:MaxRAMPercentage="), name);
            }
            checked++;
        }
        assertTrue(checked >= 5, "containers checked: " + checked);
    }

    @Test
    void gpuExpertWorkersLandOnGpuNodesAndCacheTheirKernels() throws IOException {
        JsonNode set = find(render(DEPLOY.resolve("k8s-gpu-experts")), "StatefulSet", "expert-worker");
        JsonNode pod = set.path("spec").path("template").path("spec");
        JsonNode c = pod.path("containers").get(0);
        List<String> args = args(c);
        assertEquals("cuda", flag(args, "--device"));
        assertFalse(args.contains("--redundant-slots"), "GPU workers refuse --redundant-slots");
        int shards = Integer.parseInt(env(c, "EPIC_EXPERT_SHARDS").path("value").asText());
        assertEquals(2 * shards, set.path("spec").path("replicas").asInt(), "two replicas of every shard");
        assertTrue(pod.path("nodeSelector").hasNonNull("nvidia.com/gpu.product"));
        assertTrue(stream(pod.path("tolerations")).anyMatch(t -> t.path("key").asText().equals("nvidia.com/gpu")));
        assertEquals(1, c.path("resources").path("limits").path("nvidia.com/gpu").asInt());
        String cache = env(c, "EPIC_CUDA_CACHE").path("value").asText();
        JsonNode mount = stream(c.path("volumeMounts")).filter(m -> m.path("mountPath").asText().equals(cache))
                .findFirst().orElseThrow(() -> new AssertionError("EPIC_CUDA_CACHE " + cache + " is not a mount"));
        assertFalse(mount.path("readOnly").asBoolean(false));
        assertTrue(stream(pod.path("volumes")).anyMatch(v -> v.path("name").equals(mount.path("name")) && v.has("emptyDir")));
    }

    /**
     * Every EPIC container of every overlay runs the image its kustomization names: a base's images
     * entry does not reach the resources an overlay adds, which would pull docker.io/library/epic.
     */
    @Test
    void everyOverlayRewritesEveryEpicImage() throws IOException {
        for (String overlay : OVERLAYS) {
            List<JsonNode> epic = epicContainers(render(DEPLOY.resolve(overlay)));
            assertTrue(epic.size() >= 2, overlay);
            for (JsonNode c : epic) {
                assertTrue(c.path("image").asText().matches("[^/]+\\.[^/]+/.+:.+"),
                        overlay + ": " + c.path("name").asText() + " runs image " + c.path("image").asText());
            }
        }
    }

    /**
     * Pods k and k+N serve shard k, so every shard has replicas/N replicas; voluntary evictions take one
     * worker at a time, never both replicas of a shard. Runs the entry point with a stand-in java.
     */
    @Test
    void everyShardHasTwoReplicasThatAreNeverEvictedTogether(@org.junit.jupiter.api.io.TempDir Path bin)
            throws Exception {
        List<JsonNode> base = render(DEPLOY.resolve("k8s"));
        JsonNode set = find(base, "StatefulSet", "expert-worker");
        JsonNode c = set.path("spec").path("template").path("spec").path("containers").get(0);
        int pods = set.path("spec").path("replicas").asInt();
        String shards = env(c, "EPIC_EXPERT_SHARDS").path("value").asText();
        String count = env(c, "EPIC_EXPERT_COUNT").path("value").asText();
        Path java = bin.resolve("java");
        Files.writeString(java, "#!/bin/sh\necho \"$@\"\n");
        assertTrue(java.toFile().setExecutable(true));
        Map<String, Integer> replicas = new java.util.TreeMap<>();
        for (int ordinal = 0; ordinal < pods; ordinal++) {
            ProcessBuilder pb = new ProcessBuilder("bash", DEPLOY.resolve("docker/entrypoint.sh").toString(),
                    "expert-worker", "--zk", "zk:2181").redirectErrorStream(true);
            pb.environment().putAll(Map.of("PATH", bin + ":" + System.getenv("PATH"), "HOSTNAME",
                    "expert-worker-" + ordinal, "EPIC_EXPERT_SHARDS", shards, "EPIC_EXPERT_COUNT", count));
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor(), out);
            Matcher m = Pattern.compile("--experts (\\d+-\\d+)").matcher(out);
            assertTrue(m.find(), out);
            replicas.merge(m.group(1), 1, Integer::sum);
        }
        assertEquals(Integer.parseInt(shards), replicas.size(), replicas.toString());
        assertTrue(replicas.values().stream().allMatch(r -> r == 2), replicas.toString());
        assertTrue(replicas.containsKey("0-31") && replicas.containsKey("224-255"), replicas.toString());
        JsonNode pdb = find(base, "PodDisruptionBudget", "expert-worker-pdb").path("spec");
        assertEquals(1, pdb.path("maxUnavailable").asInt());
        assertEquals("epic-expert-worker", pdb.path("selector").path("matchLabels").path("app").asText());
    }

    /**
     * A rollout: the pod leaves the Service's endpoints while it sleeps in preStop (kube-proxy lags),
     * then drains; the grace period covers both. OpenAI clients name the model, not "model".
     */
    @Test
    void theCoordinatorLeavesTheServiceBeforeItDrains() throws IOException {
        JsonNode d = find(allDocuments(), "Deployment", "coordinator");
        JsonNode pod = d.path("spec").path("template").path("spec");
        JsonNode c = pod.path("containers").get(0);
        List<String> sleep = stream(c.path("lifecycle").path("preStop").path("exec").path("command"))
                .map(JsonNode::asText).toList();
        assertEquals("sleep", sleep.getFirst());
        String drainMs = flag(args(c), "--drain-ms") != null ? flag(args(c), "--drain-ms")
                : new CommandLine(new Main()).getSubcommands().get("coordinator").getCommandSpec()
                        .findOption("--drain-ms").defaultValue();
        int drainSeconds = Integer.parseInt(drainMs) / 1000;
        assertTrue(pod.path("terminationGracePeriodSeconds").asInt() >= Integer.parseInt(sleep.get(1)) + drainSeconds + 15,
                pod.toString());
        assertTrue(flag(args(c), "--served-model-name").contains("/"), "the HF repo id, as vLLM names it");
        assertTrue(d.path("spec").path("progressDeadlineSeconds").asInt() >= 1800);
    }

    /**
     * The coordinator's prefix cache disk tier goes to a pod volume large enough for its cap, and every
     * overlay that moves attention to the workers (where the flag is refused) takes it out with its volume.
     */
    @Test
    void thePrefixCacheDiskIsAVolumeBigEnoughAndNeverBesideRemoteAttention() throws IOException {
        int withDisk = 0;
        for (String overlay : OVERLAYS) {
            JsonNode pod = find(render(DEPLOY.resolve(overlay)), "Deployment", "coordinator")
                    .path("spec").path("template").path("spec");
            JsonNode c = pod.path("containers").get(0);
            List<String> args = args(c);
            String dir = flag(args, "--prefix-cache-disk");
            List<String> volumes = stream(pod.path("volumes")).map(v -> v.path("name").asText()).toList();
            if (args.contains("--remote-attention")) {
                assertEquals(null, dir, overlay + ": refused beside --remote-attention");
                assertFalse(volumes.contains("prefixes"), overlay + ": its volume goes with it");
                assertFalse(c.path("resources").path("requests").has("ephemeral-storage"), overlay + ": and its disk");
                continue;
            }
            assertTrue(dir != null, overlay);
            withDisk++;
            JsonNode mount = stream(c.path("volumeMounts")).filter(m -> m.path("mountPath").asText().equals(dir))
                    .findFirst().orElseThrow(() -> new AssertionError(overlay + ": nothing mounted at " + dir));
            JsonNode volume = stream(pod.path("volumes")).filter(v -> v.path("name").equals(mount.path("name")))
                    .findFirst().orElseThrow();
            long capMb = Long.parseLong(flag(args, "--prefix-cache-disk-mb"));
            String size = volume.path("emptyDir").path("sizeLimit").asText();
            assertTrue(size.endsWith("Gi") && Long.parseLong(size.replace("Gi", "")) * 1024 > capMb,
                    overlay + ": a " + size + " volume for " + capMb + " MiB of blocks and their directory");
            String disk = c.path("resources").path("requests").path("ephemeral-storage").asText("0Gi");
            assertTrue(Long.parseLong(disk.replace("Gi", "")) > Long.parseLong(size.replace("Gi", "")),
                    overlay + ": the node's disk is reserved for the volume (ephemeral-storage " + disk + ")");
        }
        assertEquals(2, withDisk, "the base and the GPU overlay keep it");
    }

    /**
     * Every EPIC container has a liveness probe on the health service that only a restart mends
     * ({@code WorkerServer.LIVENESS}: not the readiness one, NOT_SERVING while workers are missing),
     * patient enough not to kill a draining pod, behind a startup probe that waits out loading.
     */
    @Test
    void everyEpicContainerIsRestartedOnlyWhenARestartHelps() throws IOException {
        List<JsonNode> docs = new ArrayList<>(allDocuments());
        for (String overlay : OVERLAYS) {
            docs.addAll(render(DEPLOY.resolve(overlay)));
        }
        int checked = 0;
        for (JsonNode c : servingContainers(docs)) {
            String name = c.path("name").asText();
            int port = c.path("readinessProbe").path("grpc").path("port").asInt();
            assertTrue(port > 0, name + " has a gRPC readiness probe");
            for (String probe : List.of("startupProbe", "livenessProbe")) {
                JsonNode grpc = c.path(probe).path("grpc");
                assertEquals(port, grpc.path("port").asInt(), name + "." + probe);
                assertEquals(dev.epic.transport.WorkerServer.LIVENESS, grpc.path("service").asText(), name + "." + probe);
            }
            JsonNode startup = c.path("startupProbe");
            assertTrue(startup.path("periodSeconds").asInt() * startup.path("failureThreshold").asInt() >= 1800,
                    name + ": loading the weights may take half an hour");
            JsonNode live = c.path("livenessProbe");
            int patience = live.path("periodSeconds").asInt() * live.path("failureThreshold").asInt();
            int preStop = c.path("lifecycle").path("preStop").isMissingNode() ? 0
                    : Integer.parseInt(stream(c.path("lifecycle").path("preStop").path("exec").path("command"))
                            .map(JsonNode::asText).toList().get(1));
            String drainMs = flag(args(c), "--drain-ms") != null ? flag(args(c), "--drain-ms")
                    : new CommandLine(new Main()).getSubcommands().get(args(c).getFirst()).getCommandSpec()
                            .findOption("--drain-ms").defaultValue();
            assertTrue(patience > preStop + Integer.parseInt(drainMs) / 1000,
                    name + ": a draining pod answers no probe for up to its drain");
            checked++;
        }
        assertTrue(checked >= 4, "EPIC containers checked: " + checked);
    }

    /**
     * Clients list every member of the ensemble (what ZooKeeper's client fails over between), not the
     * `zk` Service's one address.
     */
    @Test
    void everyEpicContainerListsTheZooKeeperEnsemble() throws IOException {
        List<JsonNode> docs = new ArrayList<>(allDocuments());
        int members = find(docs, "StatefulSet", "zk").path("spec").path("replicas").asInt();
        List<String> ensemble = IntStream.range(0, members).mapToObj(i -> "zk-" + i + ".zk-hs:2181").toList();
        assertEquals(3, ensemble.size());
        for (String overlay : OVERLAYS) {
            docs.addAll(render(DEPLOY.resolve(overlay)));
        }
        int checked = 0;
        for (JsonNode c : servingContainers(docs)) {
            assertEquals(ensemble, List.of(flag(args(c), "--zk").split(",")), c.path("name").asText());
            checked++;
        }
        assertTrue(checked >= 4, "EPIC containers checked: " + checked);
    }

    /**
     * The one-off Jobs write the model volume as the EPIC image's user (NFS servers squash root), and
     * the quantize Job, applied without kustomize, names the image the base's images entry does.
     */
    @Test
    void theOneOffJobsWriteAsTheImagesUser() throws IOException {
        Matcher uid = Pattern.compile("useradd .*--uid (\\d+)").matcher(Files.readString(DEPLOY.resolve("docker/Dockerfile")));
        assertTrue(uid.find());
        List<JsonNode> docs = allDocuments();
        for (String job : List.of("epic-model-loader", "epic-model-quantize")) {
            JsonNode pod = find(docs, "Job", job).path("spec").path("template").path("spec");
            assertEquals(Integer.parseInt(uid.group(1)), pod.path("securityContext").path("runAsUser").asInt(), job);
            assertTrue(pod.path("securityContext").path("runAsNonRoot").asBoolean(), job);
        }
        JsonNode images = documents(DEPLOY.resolve("k8s/kustomization.yaml")).getFirst().path("images").get(0);
        JsonNode quantize = find(docs, "Job", "epic-model-quantize").path("spec").path("template").path("spec")
                .path("containers").get(0);
        assertEquals(images.path("newName").asText() + ":" + images.path("newTag").asText(), quantize.path("image").asText());
        assertEquals("quantize", args(quantize).getFirst());
    }

    /** The image keeps its transaction log apart from /data: both must be on the volume. */
    @Test
    void zooKeeperKeepsItsTransactionLogOnTheVolume() throws IOException {
        JsonNode zk = find(allDocuments(), "StatefulSet", "zk").path("spec").path("template").path("spec")
                .path("containers").get(0);
        List<String> mounts = stream(zk.path("volumeMounts")).filter(m -> m.path("name").asText().equals("data"))
                .map(m -> m.path("mountPath").asText()).toList();
        assertTrue(mounts.containsAll(List.of("/data", "/datalog")), mounts.toString());
    }

    /** srvr answers "Mode: leader|follower" only inside a quorum, and only if whitelisted. */
    @Test
    void zooKeeperIsReadyOnlyInAQuorum() throws IOException {
        JsonNode zk = find(allDocuments(), "StatefulSet", "zk").path("spec").path("template").path("spec")
                .path("containers").get(0);
        assertTrue(String.join(" ", stream(zk.path("readinessProbe").path("exec").path("command")).map(JsonNode::asText).toList())
                .contains("echo srvr"));
        assertTrue(List.of(env(zk, "ZOO_4LW_COMMANDS_WHITELIST").path("value").asText().split(",")).contains("srvr"));
        assertTrue(env(zk, "ZOO_CFG_EXTRA").path("value").asText().contains("quorumListenOnAllIPs=true"));
    }

    /** The image's JVM flags are the launcher's: ./epic's JVM_FLAGS all appear in the entry point. */
    @Test
    void theEntryPointRunsTheLaunchersJvmFlags() throws IOException {
        Matcher m = Pattern.compile("JVM_FLAGS=\\(([^)]*)\\)").matcher(Files.readString(DEPLOY.resolve("../epic")));
        assertTrue(m.find(), "./epic's JVM_FLAGS");
        String entry = Files.readString(DEPLOY.resolve("docker/entrypoint.sh"));
        for (String flag : m.group(1).trim().split("\\s+")) {
            String stem = flag.startsWith("-D") ? flag.substring(0, flag.indexOf('=') + 1) : flag;
            assertTrue(entry.contains(stem), "entrypoint.sh lacks " + stem);
        }
    }

    /**
     * Worker containers exit when out of memory (the pod restarts, its registration gone) rather than
     * stay registered half-broken; the coordinator does not (it fails only the sequence that ran out).
     * Runs the entry point with a stand-in java that prints its arguments.
     */
    @Test
    void theEntryPointMakesOnlyWorkersExitOnOutOfMemory(@org.junit.jupiter.api.io.TempDir Path bin) throws Exception {
        Path java = bin.resolve("java");
        Files.writeString(java, "#!/bin/sh\necho \"$@\"\n");
        assertTrue(java.toFile().setExecutable(true));
        Map<String, Boolean> exits = Map.of("expert-worker", true, "attention-worker", true, "coordinator", false);
        for (var e : exits.entrySet()) {
            ProcessBuilder pb = new ProcessBuilder("bash", DEPLOY.resolve("docker/entrypoint.sh").toString(), e.getKey(),
                    "--zk", "zk:2181").redirectErrorStream(true);
            pb.environment().put("PATH", bin + ":" + System.getenv("PATH"));
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor(), out);
            assertEquals(e.getValue(), out.contains("-XX:+ExitOnOutOfMemoryError"), e.getKey() + ": " + out);
            assertTrue(out.contains("dev.epic.cli.Main " + e.getKey() + " --zk zk:2181"), out);
        }
    }

    /** `COPY . .` must not send build output (stale jars), checkpoints or the git history. */
    @Test
    void theDockerContextLeavesOutBuildOutputAndModels() throws IOException {
        List<String> ignored = Files.readAllLines(DEPLOY.resolve("../.dockerignore"));
        for (String p : List.of("**/target", "models", ".git", ".device")) {
            assertTrue(ignored.contains(p), ".dockerignore lacks " + p);
        }
        for (String f : List.of("docker/Dockerfile", "docker/Dockerfile.cuda")) {
            assertTrue(Files.readString(DEPLOY.resolve(f)).contains(" clean package"), f);
        }
    }

    private static List<JsonNode> documents(Path file) throws IOException {
        List<JsonNode> docs = new ArrayList<>();
        try (var it = YAML.readerFor(JsonNode.class).<JsonNode>readValues(file.toFile())) {
            while (it.hasNext()) {
                JsonNode d = it.next();
                if (d != null && d.isObject()) {
                    docs.add(d);
                }
            }
        }
        return docs;
    }

    /** Every document of every manifest under deploy/, kustomizations excepted. */
    private static List<JsonNode> allDocuments() throws IOException {
        List<JsonNode> docs = new ArrayList<>();
        try (Stream<Path> files = Files.walk(DEPLOY)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).sorted().toList()) {
                if (!f.getFileName().toString().equals("kustomization.yaml")) {
                    docs.addAll(documents(f));
                }
            }
        }
        return docs;
    }

    /**
     * What `kubectl apply -k dir` would create, for the features these manifests use: resources (files
     * and bases), JSON patches (add, replace, remove, test), then the images entries, which (as in
     * kustomize) rewrite only the resources this kustomization gathered, its bases' included. Namespace
     * rewrites are left out.
     */
    private static List<JsonNode> render(Path dir) throws IOException {
        JsonNode k = documents(dir.resolve("kustomization.yaml")).getFirst();
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode r : k.path("resources")) {
            Path p = dir.resolve(r.asText()).normalize();
            out.addAll(Files.isDirectory(p) ? render(p) : documents(p));
        }
        for (JsonNode patch : k.path("patches")) {
            JsonNode doc = find(out, patch.path("target").path("kind").asText(), patch.path("target").path("name").asText());
            for (JsonNode op : YAML.readTree(patch.path("patch").asText())) {
                apply(doc, op, dir);
            }
        }
        for (JsonNode image : k.path("images")) {
            for (JsonNode c : containers(out)) {
                if (c.path("image").asText().equals(image.path("name").asText())) {
                    ((ObjectNode) c).put("image", image.path("newName").asText() + ":" + image.path("newTag").asText());
                }
            }
        }
        return out;
    }

    private static void apply(JsonNode doc, JsonNode op, Path dir) {
        String path = op.path("path").asText();
        String where = dir + ": " + op.path("op").asText() + " " + path;
        JsonNode parent = doc.at(path.substring(0, path.lastIndexOf('/')));
        String key = path.substring(path.lastIndexOf('/') + 1);
        JsonNode value = op.get("value");
        switch (op.path("op").asText()) {
            case "test" -> assertEquals(value, doc.at(path), where);
            case "remove" -> {
                assertFalse(doc.at(path).isMissingNode(), where);
                if (parent instanceof ObjectNode o) {
                    o.remove(key);
                } else {
                    ((ArrayNode) parent).remove(Integer.parseInt(key));
                }
            }
            case "replace", "add" -> {
                assertFalse((op.path("op").asText().equals("add") ? parent : doc.at(path)).isMissingNode(), where);
                if (parent instanceof ObjectNode o) {
                    o.set(key, value);
                } else if (parent instanceof ArrayNode a && key.equals("-")) {
                    a.add(value);
                } else if (parent instanceof ArrayNode a && op.path("op").asText().equals("add")) {
                    a.insert(Integer.parseInt(key), value);
                } else if (parent instanceof ArrayNode a) {
                    a.set(Integer.parseInt(key), value);
                } else {
                    fail(where);
                }
            }
            default -> fail("unsupported patch op: " + where);
        }
    }

    private static JsonNode find(List<JsonNode> docs, String kind, String name) {
        return docs.stream()
                .filter(d -> d.path("kind").asText().equals(kind) && d.path("metadata").path("name").asText().equals(name))
                .findFirst().orElseThrow(() -> new AssertionError("no " + kind + " " + name));
    }

    /** Containers (and init containers) of every workload's pod template. */
    private static List<JsonNode> containers(List<JsonNode> docs) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode d : docs) {
            JsonNode pod = d.path("spec").path("template").path("spec");
            stream(pod.path("containers")).forEach(out::add);
            stream(pod.path("initContainers")).forEach(out::add);
        }
        return out;
    }

    private static List<JsonNode> epicContainers(List<JsonNode> docs) {
        return containers(docs).stream().filter(c -> c.path("image").asText().matches("(.*/)?epic(-cuda)?(:.*)?")).toList();
    }

    /** EPIC containers of the long-running workloads (not the one-off Jobs). */
    private static List<JsonNode> servingContainers(List<JsonNode> docs) {
        return epicContainers(docs.stream().filter(d -> !d.path("kind").asText().equals("Job")).toList());
    }

    private static List<String> args(JsonNode container) {
        return stream(container.path("args")).map(JsonNode::asText).toList();
    }

    private static String flag(List<String> args, String name) {
        int i = args.indexOf(name);
        return i >= 0 && i + 1 < args.size() ? args.get(i + 1) : null;
    }

    private static JsonNode env(JsonNode container, String name) {
        return stream(container.path("env")).filter(e -> e.path("name").asText().equals(name)).findFirst()
                .orElseThrow(() -> new AssertionError(container.path("name").asText() + " has no env " + name));
    }

    private static Stream<JsonNode> stream(JsonNode array) {
        List<JsonNode> out = new ArrayList<>();
        array.forEach(out::add);
        return out.stream();
    }
}
