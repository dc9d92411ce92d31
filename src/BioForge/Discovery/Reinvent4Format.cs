using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json.Nodes;

namespace BioForge.Discovery;

/// <summary>
/// REINVENT 4 staged-learning run files (<c>run_type = "staged_learning"</c>) read as BioForge runs: the file's tree
/// is rewritten into <see cref="OptimizeConfig"/>'s layout before overrides, key checks and validation, so a REINVENT
/// file and its BioForge twin become the same run. Every key is either mapped, accepted as one that does not apply
/// here (reported through the note callback), or refused by its name — never dropped silently. Meanings are
/// REINVENT 4's: its defaults (batch 100, σ 128, lr 1e-4, min_steps 50, no diversity filter and no replay unless the
/// file asks), max_steps ending the whole run, the diversity filter purged between stages unless
/// <c>purge_memories = false</c>.
/// </summary>
internal static class Reinvent4Format
{
    /// <summary>Scoring components BioForge computes as REINVENT 4 does (names compared as REINVENT compares them).</summary>
    private static readonly FrozenDictionary<string, string> Properties = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["qed"] = "qed",
        ["sascore"] = "sa",
        ["slogp"] = "logp",
        ["molecularweight"] = "mw",
        ["tpsa"] = "tpsa",
        ["hbonddonors"] = "hbd",
        ["hbondacceptors"] = "hba",
        ["numrotbond"] = "rotatable_bonds",
        ["numrings"] = "rings",
        ["numaromaticrings"] = "aromatic_rings",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private const string Supported = "Qed, SAScore, SlogP, MolecularWeight, TPSA, HBondDonors, HBondAcceptors, NumRotBond, NumRings, NumAromaticRings, "
        + "TanimotoSimilarity (TanimotoDistance), CustomAlerts, MatchingSubstructure, ExternalProcess";

    public static bool IsReinvent4(JsonObject root) => root.ContainsKey("run_type");

    /// <summary>The file's tree in BioForge's layout; <paramref name="path"/> names the file in errors.</summary>
    public static JsonObject Translate(JsonObject root, string path, Action<string>? onNote)
    {
        var reader = new Reader(path, onNote);
        return reader.Run(root);
    }

    /// <summary>One file's translation: its path for messages, and where notes go.</summary>
    private sealed class Reader(string path, Action<string>? onNote)
    {
        private BioForgeException Error(string key, string message) => new($"{path}: {key}: {message}");

        private void Note(string key, string message) => onNote?.Invoke($"{path}: {key}: {message}");

        public JsonObject Run(JsonObject root)
        {
            string runType = Text(root, "run_type", "run_type") ?? "";
            if (runType != "staged_learning")
                throw Error("run_type", $"'{runType}' is not supported; BioForge runs REINVENT 4's staged_learning files (sampling, scoring and transfer learning have their own bioforge commands)");

            var result = new JsonObject();
            var parameters = Table(root, "parameters", "[parameters]") ?? throw Error("[parameters]", "missing (prior_file, agent_file, batch_size …)");
            JsonObject? learning = null, filter = null, inception = null;
            JsonArray? stages = null;
            foreach (var (key, value) in root)
            {
                switch (key)
                {
                    case "run_type" or "parameters":
                        break;
                    case "seed":
                        result["seed"] = Integer(value, "seed");
                        break;
                    case "device" or "use_cuda":
                        Note(key, "not applied; choose the device with bioforge's --device");
                        break;
                    case "tb_logdir":
                        Note(key, "not applied; BioForge logs each step to metrics.jsonl in the run directory");
                        break;
                    case "json_out_config":
                        Note(key, $"not applied; BioForge writes the resolved run to {Training.RunDirectory.ConfigFile} in the run directory");
                        break;
                    case "learning_strategy":
                        learning = Table(root, key, "[learning_strategy]");
                        break;
                    case "diversity_filter":
                        filter = Table(root, key, "[diversity_filter]");
                        break;
                    case "inception":
                        inception = Table(root, key, "[inception]");
                        break;
                    case "stage":
                        stages = value as JsonArray ?? throw Error("stage", "must be a list of stages: [[stage]]");
                        break;
                    default:
                        throw Error(key, "not supported by BioForge's REINVENT 4 reader (supported: run_type, seed, device, use_cuda, tb_logdir, json_out_config, "
                            + "[parameters], [learning_strategy], [diversity_filter], [inception], [[stage]])");
                }
            }

            bool purge = true;
            var sampling = new JsonObject { ["batch_size"] = 100, ["unique_sequences"] = false };
            string? prior = null, agent = null;
            foreach (var (key, value) in parameters)
            {
                string where = $"parameters.{key}";
                switch (key)
                {
                    case "prior_file":
                        prior = String(value, where);
                        break;
                    case "agent_file":
                        agent = String(value, where);
                        break;
                    case "batch_size":
                        sampling["batch_size"] = Integer(value, where);
                        break;
                    case "unique_sequences":
                        sampling["unique_sequences"] = Boolean(value, where);
                        break;
                    case "randomize_smiles":
                        Boolean(value, where);
                        Note(where, "has no effect on a de novo (Reinvent) generator, which has no input SMILES to randomize");
                        break;
                    case "summary_csv_prefix":
                        result["output"] = new JsonObject { ["dir"] = String(value, where) };
                        break;
                    case "use_checkpoint":
                        if (Boolean(value, where)) throw Error(where, "true is not supported; continue a BioForge run with --resume");
                        break;
                    case "purge_memories":
                        purge = Boolean(value, where);
                        break;
                    case "smiles_file":
                        if (!string.IsNullOrEmpty(String(value, where)))
                            throw Error(where, "input SMILES are for LibInvent, LinkInvent and Mol2Mol generators; BioForge's SMILES model is a de novo (Reinvent) generator");
                        break;
                    case "sample_strategy" or "distance_threshold":
                        throw Error(where, "a Mol2Mol setting; BioForge's SMILES model is a de novo (Reinvent) generator");
                    default:
                        throw Error(where, "not supported (supported: prior_file, agent_file, batch_size, unique_sequences, randomize_smiles, summary_csv_prefix, use_checkpoint, purge_memories, smiles_file)");
                }
            }
            if (prior is null) throw Error("parameters.prior_file", "missing (a BioForge SMILES model directory, Hugging Face layout)");
            if (agent is null) throw Error("parameters.agent_file", "missing (the same model directory as prior_file)");
            // BioForge's agent always starts as a copy of the prior; a trained agent continues through --resume.
            if (Path.GetFullPath(agent).TrimEnd('/') != Path.GetFullPath(prior).TrimEnd('/'))
                throw Error("parameters.agent_file", $"'{agent}' differs from prior_file '{prior}'; BioForge starts the agent from the prior (continue a run with --resume)");
            result["prior"] = new JsonObject { ["model"] = prior };
            result["sampling"] = sampling;
            if (!result.ContainsKey("output")) result["output"] = new JsonObject { ["dir"] = "summary" };

            result["learning"] = Learning(learning, inception);
            result["diversity_filter"] = DiversityFilter(filter, purge);
            if (stages is null || stages.Count == 0) throw Error("[[stage]]", "at least one stage is required");
            result["stages"] = new JsonArray([.. stages.Select((s, i) => Stage(s as JsonObject ?? throw Error($"stage[{i}]", "must be a table"), i))]);
            return result;
        }

        /// <summary>[learning_strategy] and [inception] (REINVENT's replay of good molecules) → [learning].</summary>
        private JsonObject Learning(JsonObject? strategy, JsonObject? inception)
        {
            // REINVENT 4 learns as REINVENT does (no genetic exploration), whatever BioForge's own defaults are.
            var learning = new JsonObject
            {
                ["strategy"] = "reinvent",
                ["genetic_offspring"] = 0,
                ["completion_offspring"] = 0,
                ["replay_updates"] = 0,
                ["skip_repeats"] = false, // REINVENT updates on the whole batch, repeats included
                ["lr"] = 1e-4,
                ["sigma"] = 128.0,
                ["replay_size"] = 0,
                ["replay_samples"] = 0,
            };
            foreach (var (key, value) in strategy ?? [])
            {
                string where = $"learning_strategy.{key}";
                switch (key)
                {
                    case "type":
                        string type = String(value, where);
                        if (!type.Equals("dap", StringComparison.OrdinalIgnoreCase))
                            throw Error(where, $"'{type}' is not supported; BioForge learns with DAP (the augmented-likelihood loss)");
                        break;
                    case "sigma":
                        learning["sigma"] = Number(value, where);
                        break;
                    case "rate":
                        learning["lr"] = Number(value, where);
                        break;
                    default:
                        throw Error(where, "not supported (supported: type, sigma, rate)");
                }
            }
            if (inception is null) return learning;
            learning["replay_size"] = 50;
            learning["replay_samples"] = 10;
            foreach (var (key, value) in inception)
            {
                string where = $"inception.{key}";
                switch (key)
                {
                    case "memory_size":
                        learning["replay_size"] = Integer(value, where);
                        break;
                    case "sample_size":
                        learning["replay_samples"] = Integer(value, where);
                        break;
                    case "smiles_file":
                        string file = String(value, where);
                        if (file.Length == 0) break;
                        if (!File.Exists(file)) throw Error(where, $"'{file}' does not exist");
                        // REINVENT reads the first column: a SMILES per line, anything after a space, tab or comma ignored. A
                        // table's header (a first field naming SMILES) is skipped; a line RDKit cannot read is named.
                        var smiles = new List<string>();
                        int number = 0;
                        foreach (string line in File.ReadLines(file))
                        {
                            number++;
                            string first = line.Split([' ', '\t', ','], 2)[0].Trim();
                            if (first.Length == 0 || (number == 1 && first.Contains("smiles", StringComparison.OrdinalIgnoreCase))) continue;
                            if (!Chem.Molecule.TryFromSmiles(first, out var molecule, out string? invalid))
                                throw Error(where, $"{file}:{number}: '{first}' is not a valid SMILES: {invalid}");
                            molecule!.Dispose();
                            smiles.Add(first);
                        }
                        if (smiles.Count == 0) throw Error(where, $"'{file}' holds no SMILES");
                        learning["inception"] = new JsonArray([.. smiles.Select(m => JsonValue.Create(m))]);
                        break;
                    case "deduplicate":
                        if (!Boolean(value, where)) throw Error(where, "false is not supported; BioForge's replay memory holds each molecule once");
                        break;
                    default:
                        throw Error(where, "not supported (supported: smiles_file, memory_size, sample_size, deduplicate)");
                }
            }
            return learning;
        }

        private JsonObject DiversityFilter(JsonObject? section, bool purge)
        {
            // REINVENT 4 without [diversity_filter] runs without one.
            if (section is null) return new JsonObject { ["kind"] = "none" };
            var filter = new JsonObject { ["bucket_size"] = 25, ["minimum_score"] = 0.4, ["keep_between_stages"] = !purge };
            foreach (var (key, value) in section)
            {
                string where = $"diversity_filter.{key}";
                switch (key)
                {
                    case "type":
                        string type = String(value, where);
                        filter["kind"] = type switch
                        {
                            "IdenticalMurckoScaffold" => "identical_murcko_scaffold",
                            "IdenticalTopologicalScaffold" => "generic_murcko_scaffold",
                            _ => throw Error(where, $"'{type}' is not supported (supported: IdenticalMurckoScaffold, IdenticalTopologicalScaffold; "
                                + "ScaffoldSimilarity compares scaffolds with another fingerprint than BioForge's similar_scaffold, PenalizeSameSmiles has no BioForge counterpart)"),
                        };
                        break;
                    case "bucket_size":
                        filter["bucket_size"] = Integer(value, where);
                        break;
                    case "minscore":
                        filter["minimum_score"] = Number(value, where);
                        break;
                    case "minsimilarity" or "penalty_multiplier":
                        Number(value, where);
                        Note(where, "not used by the scaffold filters BioForge supports");
                        break;
                    default:
                        throw Error(where, "not supported (supported: type, bucket_size, minscore, minsimilarity, penalty_multiplier)");
                }
            }
            if (!filter.ContainsKey("kind")) throw Error("diversity_filter.type", "missing (IdenticalMurckoScaffold or IdenticalTopologicalScaffold)");
            return filter;
        }

        private JsonObject Stage(JsonObject stage, int index)
        {
            string at = $"stage[{index}]";
            // REINVENT 4 has no mode-collapse stop (min_unique 0) and only max_score moves on to the next stage.
            var result = new JsonObject { ["min_steps"] = 50L, ["max_score"] = 1.0, ["min_unique"] = 0.0, ["max_steps_ends_run"] = true };
            JsonObject? scoring = null;
            foreach (var (key, value) in stage)
            {
                string where = $"{at}.{key}";
                switch (key)
                {
                    case "max_steps" or "min_steps":
                        result[key] = Integer(value, where);
                        break;
                    case "max_score":
                        result["max_score"] = Number(value, where);
                        break;
                    case "termination":
                        string termination = String(value, where);
                        if (!termination.Equals("simple", StringComparison.OrdinalIgnoreCase)) throw Error(where, $"'{termination}' is not supported (only simple)");
                        break;
                    case "chkpt_file":
                        Note(where, "not applied; BioForge checkpoints into the run directory's checkpoints/ and writes the final agent to agent/");
                        break;
                    case "scoring":
                        scoring = value as JsonObject ?? throw Error(where, "must be a table: [stage.scoring]");
                        break;
                    case "diversity_filter":
                        throw Error(where, "a diversity filter per stage is not supported; use the global [diversity_filter]");
                    default:
                        throw Error(where, "not supported (supported: max_steps, min_steps, max_score, termination, chkpt_file, scoring)");
                }
            }
            if (!result.ContainsKey("max_steps")) throw Error($"{at}.max_steps", "missing");
            // REINVENT 4 allows min_steps past max_steps (max_steps then ends the run first); BioForge wants min <= max.
            result["min_steps"] = Math.Min(result["min_steps"]!.GetValue<long>(), result["max_steps"]!.GetValue<long>());
            if (scoring is null) throw Error($"{at}.scoring", "missing: [stage.scoring] with its [[stage.scoring.component]]");
            var components = new JsonArray();
            foreach (var (key, value) in scoring)
            {
                string where = $"{at}.scoring.{key}";
                switch (key)
                {
                    case "type":
                        string type = String(value, where);
                        result["aggregate"] = type switch
                        {
                            "geometric_mean" or "custom_product" => "geometric",
                            "arithmetic_mean" or "custom_sum" => "arithmetic",
                            _ => throw Error(where, $"'{type}' is not supported (geometric_mean or arithmetic_mean)"),
                        };
                        break;
                    case "component":
                        var list = value as JsonArray ?? throw Error(where, "must be a list: [[stage.scoring.component]]");
                        for (int c = 0; c < list.Count; c++)
                            foreach (var component in Component(list[c] as JsonObject ?? throw Error($"{where}[{c}]", "must be a table"), $"{where}[{c}]"))
                                components.Add(component);
                        break;
                    case "filename" or "filetype":
                        throw Error(where, "scoring components from a separate file are not supported; put them in the run file");
                    case "parallel":
                        Note(where, "not applied; BioForge scores a batch on all the threads it is given");
                        break;
                    default:
                        throw Error(where, "not supported (supported: type, component)");
                }
            }
            if (!result.ContainsKey("aggregate")) throw Error($"{at}.scoring.type", "missing (geometric_mean or arithmetic_mean)");
            if (components.Count == 0) throw Error($"{at}.scoring", "no [[stage.scoring.component]]");
            result["components"] = components;
            return result;
        }

        /// <summary>One <c>[[stage.scoring.component]]</c>: one BioForge component per endpoint.</summary>
        private IEnumerable<JsonObject> Component(JsonObject entry, string at)
        {
            if (entry.Count != 1) throw Error(at, "must hold exactly one component table, e.g. [stage.scoring.component.Qed]");
            var (name, node) = entry.First();
            string where = $"{at}.{name}";
            var body = node as JsonObject ?? throw Error(where, "must be a table");
            // REINVENT compares component names case-blind, without '-' and '_'.
            string lookup = name.ToLowerInvariant().Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);
            JsonObject shared = [];
            JsonArray? endpoints = null;
            foreach (var (key, value) in body)
            {
                if (key == "params") shared = value as JsonObject ?? throw Error($"{where}.params", "must be a table");
                else if (key == "endpoint") endpoints = value as JsonArray ?? throw Error($"{where}.endpoint", "must be a list: [[…endpoint]]");
                else throw Error($"{where}.{key}", "not supported (a component has params and [[endpoint]])");
            }
            if (endpoints is null || endpoints.Count == 0) throw Error($"{where}.endpoint", "missing: at least one [[…endpoint]]");
            var result = new List<JsonObject>();
            for (int e = 0; e < endpoints.Count; e++)
                result.Add(Endpoint(lookup, name, shared, endpoints[e] as JsonObject ?? throw Error($"{where}.endpoint[{e}]", "must be a table"), $"{where}.endpoint[{e}]"));
            return result;
        }

        private JsonObject Endpoint(string lookup, string name, JsonObject shared, JsonObject endpoint, string at)
        {
            var component = new JsonObject();
            var parameters = new JsonObject();
            // Endpoint parameters take precedence over the component's, as in REINVENT 4.
            foreach (var (key, value) in shared) parameters[key] = value?.DeepClone();
            JsonObject? transform = null;
            foreach (var (key, value) in endpoint)
            {
                string where = $"{at}.{key}";
                switch (key)
                {
                    case "name":
                        component["name"] = String(value, where);
                        break;
                    case "weight":
                        double weight = Number(value, where);
                        if (weight <= 0) throw Error(where, $"{weight.ToString(CultureInfo.InvariantCulture)}: BioForge needs a positive weight (leave the component out instead)");
                        component["weight"] = weight;
                        break;
                    case "params":
                        foreach (var (p, v) in value as JsonObject ?? throw Error(where, "must be a table")) parameters[p] = v?.DeepClone();
                        break;
                    case "transform":
                        transform = value as JsonObject ?? throw Error(where, "must be a table");
                        break;
                    default:
                        throw Error(where, "not supported (an endpoint has name, weight, params, transform)");
                }
            }

            bool penalty = false;
            if (Properties.TryGetValue(lookup, out string? type))
            {
                component["type"] = type;
                Only(parameters, at, name);
            }
            else switch (lookup)
                {
                    case "tanimotosimilarity" or "tanimotodistance":
                        component["type"] = "similarity";
                        Only(parameters, at, name, "smiles", "radius", "use_counts", "use_features");
                        var smiles = Strings(parameters["smiles"], $"{at}.params.smiles");
                        // REINVENT 4 scores each reference as a value of its own (only the first reaches the endpoint's
                        // transform); BioForge takes the best of several, so only one reference means the same in both.
                        if (smiles.Count != 1) throw Error($"{at}.params.smiles", $"{smiles.Count} references: give exactly one per endpoint (REINVENT 4 does not take the best of several)");
                        component["smiles"] = new JsonArray(JsonValue.Create(smiles[0]));
                        component["radius"] = Integer(Required(parameters, "radius", at), $"{at}.params.radius");
                        component["fingerprint"] = Boolean(Required(parameters, "use_counts", at), $"{at}.params.use_counts") ? "counts" : "unfolded";
                        component["features"] = Boolean(Required(parameters, "use_features", at), $"{at}.params.use_features");
                        break;
                    case "customalerts":
                        // A filter in REINVENT 4: a match zeroes the total, as BioForge's forbidden_substructure does.
                        component["type"] = "forbidden_substructure";
                        Only(parameters, at, name, "smarts");
                        component["smarts"] = new JsonArray([.. Strings(Required(parameters, "smarts", at), $"{at}.params.smarts").Select(s => JsonValue.Create(s))]);
                        penalty = true;
                        break;
                    case "matchingsubstructure":
                        component["type"] = "matching_substructure";
                        Only(parameters, at, name, "smarts", "use_chirality");
                        if (parameters["use_chirality"] is { } chirality && Boolean(chirality, $"{at}.params.use_chirality"))
                            throw Error($"{at}.params.use_chirality", "true is not supported (BioForge matches SMARTS without chirality)");
                        component["smarts"] = new JsonArray([.. Strings(Required(parameters, "smarts", at), $"{at}.params.smarts").Select(s => JsonValue.Create(s))]);
                        penalty = true;
                        break;
                    case "externalprocess":
                        component["type"] = "external_process";
                        Only(parameters, at, name, "executable", "args", "property");
                        component["executable"] = String(Required(parameters, "executable", at), $"{at}.params.executable");
                        component["args"] = parameters["args"] is { } args ? String(args, $"{at}.params.args") : "";
                        component["property"] = parameters["property"] is { } property ? String(property, $"{at}.params.property") : "predictions";
                        break;
                    default:
                        throw Error(at, $"scoring component '{name}' is not supported by BioForge (supported: {Supported})");
                }
            if (penalty)
            {
                // REINVENT 4 multiplies filters and penalties in as they are; a transform or weight would mean nothing.
                if (transform is not null) throw Error($"{at}.transform", $"{name} is a filter/penalty in REINVENT 4; a transform does not apply");
                component.Remove("weight");
            }
            else if (transform is not null) component["transform"] = Transform(transform, $"{at}.transform");
            return component;
        }

        /// <summary>REINVENT 4's transforms in BioForge's terms (same formulas; see <see cref="TransformSettings"/>).</summary>
        private JsonObject Transform(JsonObject transform, string at)
        {
            string type = transform["type"] is { } t ? String(t, $"{at}.type") : throw Error($"{at}.type", "missing");
            string kind = type.ToLowerInvariant().Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);
            var result = new JsonObject();
            double Get(string key, double? fallback = null) =>
                transform[key] is { } v ? Number(v, $"{at}.{key}") : fallback ?? throw Error($"{at}.{key}", "missing");
            string[] known = kind switch
            {
                "sigmoid" or "reversesigmoid" => ["type", "low", "high", "k"],
                "doublesigmoid" => ["type", "low", "high", "coef_div", "coef_si", "coef_se"],
                "step" => ["type", "low", "high"],
                _ => throw Error($"{at}.type", $"'{type}' is not supported (sigmoid, reverse_sigmoid, double_sigmoid, step)"),
            };
            foreach (var (key, _) in transform)
                if (!known.Contains(key)) throw Error($"{at}.{key}", $"not a parameter of {type} (its parameters: {string.Join(", ", known.Skip(1))})");
            result["low"] = Get("low");
            result["high"] = Get("high");
            if (Get("high") < Get("low") || (Get("high") == Get("low") && kind != "step"))
                throw Error(at, kind == "step" ? "high must be at least low" : "high must exceed low (REINVENT 4 turns an empty window into a hard step, which BioForge does not; use step)");
            switch (kind)
            {
                case "sigmoid" or "reversesigmoid":
                    result["kind"] = kind == "sigmoid" ? "sigmoid" : "reverse_sigmoid";
                    result["k"] = Get("k");
                    break;
                case "doublesigmoid":
                    // REINVENT 4's slopes are coef_si / coef_div (rising) and coef_se / coef_div (falling), per unit, base 10.
                    double div = Get("coef_div", 100), si = Get("coef_si", 150), se = Get("coef_se", 150);
                    if (div <= 0 || si <= 0 || se <= 0) throw Error(at, "coef_div, coef_si and coef_se must be positive (a zero coef_div makes REINVENT 4 use hard steps)");
                    result["kind"] = "double_sigmoid";
                    result["k"] = si / div;
                    if (se != si) result["k_high"] = se / div;
                    break;
                default:
                    result["kind"] = "step";
                    break;
            }
            return result;
        }

        private void Only(JsonObject parameters, string at, string name, params string[] allowed)
        {
            foreach (var (key, _) in parameters)
                if (!allowed.Contains(key))
                    throw Error($"{at}.params.{key}", $"not a parameter BioForge supports for {name}" + (allowed.Length > 0 ? $" (supported: {string.Join(", ", allowed)})" : " (it takes none)"));
        }

        private JsonNode Required(JsonObject parameters, string key, string at) => parameters[key] ?? throw Error($"{at}.params.{key}", "missing");

        private JsonObject? Table(JsonObject root, string key, string name) =>
            root[key] is null ? null : root[key] as JsonObject ?? throw Error(name, "must be a table");

        private string? Text(JsonObject root, string key, string where) => root[key] is { } value ? String(value, where) : null;

        private string String(JsonNode? value, string where) =>
            value is JsonValue v && v.TryGetValue(out string? text) ? text : throw Error(where, "must be a string");

        private bool Boolean(JsonNode? value, string where) =>
            value is JsonValue v && v.TryGetValue(out bool flag) ? flag : throw Error(where, "must be true or false");

        private long Integer(JsonNode? value, string where) =>
            value is JsonValue v && v.TryGetValue(out long number) ? number : throw Error(where, "must be an integer");

        private double Number(JsonNode? value, string where)
        {
            if (value is JsonValue v)
            {
                if (v.TryGetValue(out double real)) return real;
                if (v.TryGetValue(out long integer)) return integer;
            }
            throw Error(where, "must be a number");
        }

        private List<string> Strings(JsonNode? value, string where) => value switch
        {
            JsonArray list => [.. list.Select((item, i) => String(item, $"{where}[{i}]"))],
            JsonValue => [String(value, where)],
            _ => throw Error(where, "must be a string or a list of strings"),
        };
    }
}
