namespace BioForge.Training;

public enum LearningRateDecay { Constant, Linear, Cosine }

/// <summary>
/// Linear warm-up from 0 to the peak rate, then constant, linear or cosine decay to <c>MinRatio</c> × peak at the last
/// step. A pure function of the step, so a resumed run needs no scheduler state beyond the step counter.
/// </summary>
public sealed record LearningRateSchedule(double Peak, long WarmupSteps, long TotalSteps, LearningRateDecay Decay, double MinRatio = 0.1)
{
    /// <summary>The decays as run files name them (<c>constant</c>, <c>linear</c>, <c>cosine</c>).</summary>
    public static readonly IReadOnlyDictionary<string, LearningRateDecay> DecayNames = new Dictionary<string, LearningRateDecay>(StringComparer.Ordinal)
    {
        ["constant"] = LearningRateDecay.Constant,
        ["linear"] = LearningRateDecay.Linear,
        ["cosine"] = LearningRateDecay.Cosine,
    };

    /// <summary>Checks a run file's decay name (<paramref name="setting"/> names where it was read).</summary>
    public static void RequireDecay(string name, string setting, Action<bool, string> require) =>
        require(DecayNames.ContainsKey(name), $"{setting} must be constant, linear or cosine (got '{name}')");

    /// <summary>The rate of optimizer step <paramref name="step"/> (1-based, as counted after the update).</summary>
    public double At(long step)
    {
        if (WarmupSteps > 0 && step <= WarmupSteps) return Peak * step / WarmupSteps;
        if (Decay == LearningRateDecay.Constant || TotalSteps <= WarmupSteps) return Peak;
        double progress = Math.Clamp((double)(step - WarmupSteps) / (TotalSteps - WarmupSteps), 0, 1);
        double shape = Decay == LearningRateDecay.Linear ? 1 - progress : 0.5 * (1 + Math.Cos(Math.PI * progress));
        return Peak * (MinRatio + (1 - MinRatio) * shape);
    }

    public void Validate()
    {
        if (!(Peak > 0) || double.IsInfinity(Peak)) throw new BioForgeException($"optimizer.lr must be positive (got {Peak})");
        if (WarmupSteps < 0) throw new BioForgeException($"schedule.warmup_steps must be >= 0 (got {WarmupSteps})");
        if (MinRatio is < 0 or > 1) throw new BioForgeException($"schedule.min_lr_ratio must be in [0, 1] (got {MinRatio})");
    }
}
