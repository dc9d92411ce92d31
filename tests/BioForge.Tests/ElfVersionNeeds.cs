using System.Text;

namespace BioForge.Tests;

/// <summary>Reads the version names an ELF64 shared library requires (its .gnu.version_r section), like readelf -V.</summary>
internal static class ElfVersionNeeds
{
    public static List<string> Read(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
        int Header(int i) => (int)(shoff + (long)i * shentsize);
        var names = new List<string>();
        for (int i = 0; i < shnum; i++)
        {
            if (BitConverter.ToUInt32(elf, Header(i) + 4) != 0x6ffffffe) continue; // SHT_GNU_verneed
            int entry = (int)BitConverter.ToInt64(elf, Header(i) + 24);
            int strtab = (int)BitConverter.ToInt64(elf, Header(BitConverter.ToInt32(elf, Header(i) + 40)) + 24);
            for (uint n = BitConverter.ToUInt32(elf, Header(i) + 44); n > 0; n--)
            {
                int aux = entry + BitConverter.ToInt32(elf, entry + 8);
                for (int a = BitConverter.ToUInt16(elf, entry + 2); a > 0; a--)
                {
                    int name = strtab + BitConverter.ToInt32(elf, aux + 8), end = name;
                    while (elf[end] != 0) end++;
                    names.Add(Encoding.ASCII.GetString(elf, name, end - name));
                    aux += BitConverter.ToInt32(elf, aux + 12);
                }
                entry += BitConverter.ToInt32(elf, entry + 12);
            }
        }
        return names;
    }
}
