package dev.epic.cli;

import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.KvCacheDtype;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * Where a client command's requests go (exactly one): the model run in this process, all experts
 * local, behind an in-process coordinator; or a running coordinator. Both take the same code path.
 */
final class ModelOrTarget {
    @Option(names = "--model", paramLabel = "DIR", description = "run the model in this process (all experts local)")
    Path model;

    @Option(names = "--target", paramLabel = "HOST:PORT", description = "a running coordinator (epic coordinator / epic local)")
    String target;

    /** With --model, the in-process coordinator the requests go to (the caller closes it); null with --target. */
    CoordinatorServer startLocal(SchedulerOptions options, KvCacheDtype kvCacheDtype) throws IOException {
        return startLocal(options, kvCacheDtype, m -> m);
    }

    /** As above, serving the model as {@code serving} makes it (its chat template flags). */
    CoordinatorServer startLocal(SchedulerOptions options, KvCacheDtype kvCacheDtype,
            java.util.function.UnaryOperator<ServedModel> serving) throws IOException {
        if (model == null) {
            return null;
        }
        ServedModel served = serving.apply(ServedModel.open(model, null, 0));
        served.transformer().kvCacheDtype(kvCacheDtype);
        return CoordinatorServer.start(served, ExpertBackend.local(), options, "127.0.0.1", 0);
    }

    /** The coordinator's gRPC address: {@code local}'s ({@link #startLocal}), or --target. */
    String target(CoordinatorServer local) {
        return local != null ? local.target() : target;
    }
}
