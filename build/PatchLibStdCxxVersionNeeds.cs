// MSBuild task (compiled by RoslynCodeTaskFactory from Directory.Build.targets).
//
// TorchSharp 0.107's libLibTorchSharp.so was linked against GCC 13's libstdc++ and so records a need for the
// version GLIBCXX_3.4.32. The only symbol bound to that version is std::ios_base_library_init, an undefined marker
// symbol that no relocation uses, yet the dynamic loader refuses the whole library on libstdc++ from GCC 12
// (Debian 12, Ubuntu 22.04). This task rewrites such version needs to the baseline "GLIBCXX_3.4" (present in every
// libstdc++), after checking that only marker symbols depend on them, so the copy in the build output loads.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class PatchLibStdCxxVersionNeeds : Task
{
    private const uint ShtDynsym = 11;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;
    private const int NewestSupportedMinor = 30; // GCC 12's libstdc++ provides GLIBCXX_3.4.30
    private static readonly HashSet<string> MarkerSymbols = new HashSet<string> { "_ZSt21ios_base_library_initv" };

    [Required]
    public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            var path = item.GetMetadata("FullPath");
            try
            {
                int patched = Patch(path);
                if (patched > 0)
                    Log.LogMessage(MessageImportance.High, $"BioForge: rewrote {patched} GLIBCXX version need(s) in {path} so it loads on GCC 12 libstdc++");
            }
            catch (InvalidDataException e)
            {
                Log.LogError($"BioForge: cannot patch {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static int Patch(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a little-endian 64-bit ELF file");
        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);

        long Section(int i) => shoff + (long)i * shentsize;
        uint Type(int i) => BitConverter.ToUInt32(elf, (int)Section(i) + 4);
        long Offset(int i) => (long)BitConverter.ToUInt64(elf, (int)Section(i) + 24);
        long Size(int i) => (long)BitConverter.ToUInt64(elf, (int)Section(i) + 32);
        int Link(int i) => (int)BitConverter.ToUInt32(elf, (int)Section(i) + 40);
        uint Info(int i) => BitConverter.ToUInt32(elf, (int)Section(i) + 44);

        int verneed = -1, versym = -1, dynsym = -1;
        for (int i = 0; i < shnum; i++)
        {
            uint t = Type(i);
            if (t == ShtGnuVerneed) verneed = i;
            else if (t == ShtGnuVersym) versym = i;
            else if (t == ShtDynsym) dynsym = i;
        }
        if (verneed < 0 || versym < 0 || dynsym < 0) return 0;
        long dynstr = Offset(Link(verneed));

        string ReadString(long strtab, uint offset)
        {
            int start = checked((int)(strtab + offset)), end = start;
            while (elf[end] != 0) end++;
            return Encoding.ASCII.GetString(elf, start, end - start);
        }

        uint baseline = FindString(elf, dynstr, Size(Link(verneed)), "GLIBCXX_3.4");
        int patched = 0;
        long entry = Offset(verneed);
        for (uint n = 0; n < Info(verneed); n++)
        {
            int cnt = BitConverter.ToUInt16(elf, (int)entry + 2);
            long aux = entry + BitConverter.ToUInt32(elf, (int)entry + 8);
            for (int a = 0; a < cnt; a++)
            {
                string name = ReadString(dynstr, BitConverter.ToUInt32(elf, (int)aux + 8));
                ushort index = BitConverter.ToUInt16(elf, (int)aux + 6);
                if (IsTooNew(name))
                {
                    EnsureOnlyMarkersUse(index, name);
                    if (baseline == uint.MaxValue) throw new InvalidDataException("no GLIBCXX_3.4 string to point the version need at");
                    BitConverter.GetBytes(ElfHash("GLIBCXX_3.4")).CopyTo(elf, (int)aux);
                    BitConverter.GetBytes(baseline).CopyTo(elf, (int)aux + 8);
                    patched++;
                }
                aux += BitConverter.ToUInt32(elf, (int)aux + 12);
            }
            entry += BitConverter.ToUInt32(elf, (int)entry + 12);
        }
        if (patched == 0) return 0;

        string temp = path + ".patching";
        File.WriteAllBytes(temp, elf);
        File.Replace(temp, path, destinationBackupFileName: null);
        return patched;

        void EnsureOnlyMarkersUse(ushort versionIndex, string versionName)
        {
            long symtab = Offset(dynsym), symstr = Offset(Link(dynsym)), versyms = Offset(versym);
            long count = Size(dynsym) / 24;
            for (long s = 0; s < count; s++)
            {
                ushort v = (ushort)(BitConverter.ToUInt16(elf, (int)(versyms + s * 2)) & 0x7fff);
                if (v != versionIndex) continue;
                long sym = symtab + s * 24;
                string symbol = ReadString(symstr, BitConverter.ToUInt32(elf, (int)sym));
                if (!MarkerSymbols.Contains(symbol))
                    throw new InvalidDataException($"symbol {symbol} really needs {versionName}; install a newer libstdc++ instead");
            }
        }
    }

    private static bool IsTooNew(string version)
    {
        const string prefix = "GLIBCXX_3.4.";
        return version.StartsWith(prefix, StringComparison.Ordinal)
            && int.TryParse(version.Substring(prefix.Length), out int minor)
            && minor > NewestSupportedMinor;
    }

    private static uint FindString(byte[] elf, long strtab, long size, string value)
    {
        byte[] needle = Encoding.ASCII.GetBytes(value + "\0");
        for (long i = 1; i + needle.Length <= size; i++)
        {
            if (elf[strtab + i - 1] != 0) continue;
            bool match = true;
            for (int j = 0; j < needle.Length && match; j++) match = elf[strtab + i + j] == needle[j];
            if (match) return (uint)i;
        }
        return uint.MaxValue;
    }

    private static uint ElfHash(string name)
    {
        uint h = 0;
        foreach (char c in name)
        {
            h = (h << 4) + c;
            uint g = h & 0xf0000000;
            if (g != 0) h ^= g >> 24;
            h &= ~g;
        }
        return h;
    }
}
