package dev.epic.cli;

import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.io.PrintWriter;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;

/** {@code epic logits --target}: the same JSON lines as {@code --model}, computed by a coordinator. */
final class RemoteLogits {
    private RemoteLogits() {}

    static int print(String target, int[] tokens, int steps, long timeoutS, PrintWriter out, PrintWriter err) {
        ManagedChannel channel;
        try {
            channel = Channels.open(target);
        } catch (IllegalArgumentException e) {
            err.println("epic logits: " + e.getMessage());
            err.flush();
            return LogitsCommand.BAD_INPUT;
        }
        try {
            LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(steps);
            for (int t : tokens) {
                req.addPromptTokenIds(t);
            }
            LogitsResponse r = GenerationServiceGrpc.newBlockingStub(channel).withDeadlineAfter(timeoutS, TimeUnit.SECONDS)
                    .logits(req.build());
            for (int k = 0; k < r.getStepsCount(); k++) {
                float[] logits = new float[r.getVocabSize()];
                r.getSteps(k).getLogits().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(logits);
                out.println(LogitsCommand.line(k, r.getSteps(k).getArgmax(), logits));
            }
            out.flush();
            return 0;
        } catch (StatusRuntimeException e) {
            err.println("epic logits: " + target + ": " + dev.epic.transport.StatusText.of(e.getStatus()));
            err.flush();
            return e.getStatus().getCode() == io.grpc.Status.Code.INVALID_ARGUMENT ? LogitsCommand.BAD_INPUT : 1;
        } finally {
            channel.shutdownNow();
        }
    }
}
