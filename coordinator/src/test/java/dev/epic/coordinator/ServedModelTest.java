package dev.epic.coordinator;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.text.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

class ServedModelTest {
    private static final Tokenizer V3 = Tokenizer.deepSeekV3();

    /**
     * OpenAI's system_fingerprint names the numerics: the same for the same checkpoint and formats,
     * another for another checkpoint, weight format or KV cache dtype.
     */
    @Test
    void theSystemFingerprintChangesWithWhatResultsDependOn() {
        java.nio.file.Path tiny = dev.epic.model.TestData.model("tiny-v3");
        ServedModel a = ServedModel.open(tiny, null, 0);
        String fp = a.systemFingerprint();
        assertTrue(fp.matches("fp_[0-9a-f]{12}"), fp);
        org.junit.jupiter.api.Assertions.assertEquals(fp, ServedModel.open(tiny, null, 0).systemFingerprint());
        java.util.Set<String> others = new java.util.HashSet<>(java.util.List.of(fp,
                ServedModel.open(dev.epic.model.TestData.model("tiny-v3-fp8"), null, 0).systemFingerprint(),
                ServedModel.open(tiny, null, 0, dev.epic.model.quant.WeightFormat.Q8).systemFingerprint()));
        a.transformer().kvCacheDtype(dev.epic.model.KvCacheDtype.BF16);
        others.add(a.systemFingerprint());
        org.junit.jupiter.api.Assertions.assertEquals(4, others.size(), others.toString());
    }

    @Test
    void aTokenizerThatFitsTheVocabularyNeedsNoWarning() {
        assertNull(ServedModel.vocabularyMismatch(V3, 129_280));
        assertNull(ServedModel.vocabularyMismatch(V3, V3.size()));
    }

    @Test
    void aLargerTokenizerIsNamedWithWhatItCosts() {
        // A 2048-token model (as the golden tiny-v3) served with the shipped tokenizer: BOS 0 and EOS 1 fit.
        String small = ServedModel.vocabularyMismatch(V3, 2048);
        assertTrue(small.contains("has " + V3.size() + " tokens") && small.contains(">= 2048"), small);
        assertTrue(!small.contains("BOS") && !small.contains("EOS"), small);
        // A vocabulary that ends before EOS (id 1): every answer runs to max_tokens.
        String tiny = ServedModel.vocabularyMismatch(V3, 1);
        assertTrue(tiny.contains("EOS is id 1") && !tiny.contains("BOS"), tiny);
    }
}
