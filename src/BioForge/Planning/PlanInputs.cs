using BioForge.Models;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Tokenizers;
using BioForge.Training;

namespace BioForge.Planning;

/// <summary>
/// What <c>bioforge plan --model</c> accepts: a training run configuration (YAML: the network and the workload it
/// trains with), a Hugging Face <c>config.json</c> or checkpoint directory, or an ESM-2 size (<c>esm2-650M</c>, <c>esm2-3B</c>).
/// </summary>
public static class PlanInputs
{
    public static (ModelShape Model, WorkloadSpec Workload) Load(string what)
    {
        if (what.StartsWith("esm2-", StringComparison.OrdinalIgnoreCase) && !File.Exists(what) && !Directory.Exists(what))
        {
            string size = what["esm2-".Length..];
            return EsmConfig.Esm2Sizes.TryGetValue(size, out var sized)
                ? (ModelShape.Of(sized), new WorkloadSpec())
                : throw new BioForgeException($"--model {what}: ESM-2 sizes are {string.Join(", ", EsmConfig.Esm2Sizes.Keys.Select(k => "esm2-" + k))}");
        }
        if (Directory.Exists(what)) return (FromConfigJson(Path.Combine(what, ModelRegistry.ConfigFile)), new WorkloadSpec());
        if (!File.Exists(what)) throw new BioForgeException($"--model {what}: no such file or directory (a run YAML, a config.json, a model directory or esm2-SIZE)");
        if (what.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return (FromConfigJson(what), new WorkloadSpec());
        return FromRunConfig(what);
    }

    private static ModelShape FromConfigJson(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: not found (expected a Hugging Face config.json)");
        var json = ModelRegistry.ReadConfig(path);
        return ModelRegistry.Get(json["model_type"]?.ToString(), path).Shape(json, path);
    }

    private static (ModelShape, WorkloadSpec) FromRunConfig(string path)
    {
        var run = RunConfig.Load(path);
        var workload = new WorkloadSpec
        {
            SequenceLength = run.Data.MaxLength,
            TokensPerMicroBatch = run.Data.TokensPerBatch,
            Accumulation = run.Train.Accumulation,
            Precision = run.Train.Precision,
            ZeroStage = run.Train.ZeroStage,
            ActivationCheckpointing = run.Train.ActivationCheckpointing,
            VocabularySplit = run.Train.VocabParallel,
            BucketMb = run.Train.BucketMb,
        };
        if (run.Model.Init is not null) return (FromConfigJson(Path.Combine(run.Model.Init, ModelRegistry.ConfigFile)), workload);
        var json = run.Model.Config?.DeepClone().AsObject() ?? [];
        if (run.Family is EsmFamily)
        {
            json["vocab_size"] ??= EsmTokenizer.Esm2.Vocabulary.Count;
            json["position_embedding_type"] ??= "rotary";
            return (ModelShape.Of(EsmConfig.FromJson(json, path)), workload);
        }
        if (json["vocab_size"] is null)
        {
            // A new decoder takes its vocabulary from the prepared corpus: SMILES tokens, or residues (as the trainer decides).
            string vocabulary = Path.Combine(run.Data.Dir, SmilesVocabulary.FileName), residues = Path.Combine(run.Data.Dir, LlamaCheckpoint.ResidueFileName);
            if (File.Exists(vocabulary)) json["vocab_size"] = SmilesVocabulary.Load(vocabulary).Count;
            else if (File.Exists(residues)) json["vocab_size"] = EsmTokenizer.FromVocabFile(residues).Vocabulary.Count;
            else
                throw new BioForgeException($"{path}: the decoder's vocabulary size comes from the prepared corpus ({vocabulary} for SMILES, {residues} for proteins), "
                    + "which does not exist (prepare the corpus, or set model.config.vocab_size)");
        }
        return (ModelShape.Of(LlamaConfig.FromJson(json, path)), workload);
    }
}
