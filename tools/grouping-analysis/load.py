import numpy as np, blake3, os, struct, csv
D=os.environ.get('MRI_SYNTH_DATA','../shared/data/br35h')
C=os.path.join(os.environ.get('MRI_SYNTH_CACHE', os.path.expanduser('~/.cache/mri-synth')), 'v1-s64-m50')
files=[];labels=[];pix=[];thumb=[];geo=[]
ref={}
for r in csv.DictReader(open(D+'/near_duplicate_groups.csv')): ref[r['file']]=r['group']
for lab in ['yes','no']:
    for f in sorted(os.listdir(D+'/'+lab)):
        b=open(f'{D}/{lab}/{f}','rb').read()
        h=blake3.blake3(b).hexdigest()
        e=open(f'{C}/{h}.bin','rb').read()
        hdr=struct.unpack('<4s'+'I'*10,e[:44])
        npix,nth=hdr[2],hdr[3]
        fl=np.frombuffer(e[44:],dtype='<f4')
        assert len(fl)==npix+nth,(len(fl),hdr)
        files.append(f'{lab}/{f}');labels.append(lab);pix.append(fl[:npix]);thumb.append(fl[npix:]);geo.append(hdr[4:])
np.savez('data.npz',files=np.array(files),labels=np.array(labels),pix=np.array(pix),thumb=np.array(thumb),geo=np.array(geo),ref=np.array([ref.get(f, ref.get(f.split('/')[1],'?')) for f in files]))
print(len(files), list(ref.items())[:2])
